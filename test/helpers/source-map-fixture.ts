/**
 * A TypeScript service in a temp directory of its own (its own package.json, so it is the
 * application root), compiled the ways users ship TypeScript: `tsc --sourceMap` (external maps),
 * `tsc --inlineSourceMap`, or an esbuild minified bundle; run with `node` under real HTTP load with
 * the plugin from dist/ (build first) and the file exporter. What it wrote is decoded.
 *
 *   const app = await SourceMapFixture.create('external');
 *   const run = await app.run({ sourceMaps: true });   // load, close, profiles decoded
 *   app.hotLine                                        // the TS line of burnCpuInTypeScript
 *   await app.remove();
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';

const REPO = path.resolve(__dirname, '../..');
const TSC = path.join(REPO, 'node_modules/typescript/bin/tsc');

export type Build = 'external' | 'inline' | 'bundle';

/** The service: type-only declarations first, so the JavaScript lines differ from these. */
export const SERVER_TS = `// Types only: none of these lines reach the JavaScript.
declare const require: (id: string) => any;
declare const process: { env: Record<string, string>; on(e: string, f: () => void): void; exit(code: number): void; stdout: { write(s: string): void } };
export interface WorkOptions {
  iterations: number;
  budgetMs: number;
}
export type WorkResult = { value: number; rounds: number };
type Unused = { a: string; b: number; c: boolean };
interface AlsoUnused extends Unused {
  d: string[];
}

function burnCpuInTypeScript(options: WorkOptions): WorkResult {
  let value = 0;
  let rounds = 0;
  const end = Date.now() + options.budgetMs;
  while (Date.now() < end) {
    for (let i = 0; i < options.iterations; i++) value += Math.sqrt(i + rounds);
    rounds++;
  }
  return { value, rounds };
}

const extraScripts: Array<() => unknown> = JSON.parse(process.env.EXTRA_SCRIPTS || '[]').map((file: string) => require(file).hot);

async function main(): Promise<void> {
  const fastify = require(process.env.FASTIFY_PATH);
  const plugin = require(process.env.PLUGIN_PATH);
  const app = fastify({ logger: { level: 'warn' } });
  await app.register(plugin, JSON.parse(process.env.PLUGIN_OPTIONS));
  app.get('/hot', async () => {
    for (const extra of extraScripts) extra();
    return burnCpuInTypeScript({ iterations: 2000, budgetMs: 3 });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write('READY ' + app.server.address().port + '\\n');
  process.on('SIGTERM', () => {
    app.close().then(() => {
      process.stdout.write('STATS ' + JSON.stringify(app.profiler.stats()) + '\\n');
      process.exit(0);
    });
  });
}
void main();
`;

export interface FixtureRun {
  profiles: { file: string; profile: Profile }[];
  stats: Record<string, unknown>;
  stdout: string;
  stderr: string;
}

export interface Frame {
  name: string;
  file: string;
  line: number;
}

export class SourceMapFixture {
  private constructor(
    readonly dir: string,
    readonly entry: string,
  ) {}

  /** The TS line of `function burnCpuInTypeScript(`. */
  get hotLine(): number {
    return lineOf(SERVER_TS, 'function burnCpuInTypeScript(');
  }

  static create(build: Build): SourceMapFixture {
    const dir = mkdtempSync(path.join(os.tmpdir(), `fcp-source-maps-${build}-`));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'source-map-fixture', private: true }));
    mkdirSync(path.join(dir, 'src'));
    writeFileSync(path.join(dir, 'src/server.ts'), SERVER_TS);
    const compilerOptions = { module: 'commonjs', target: 'es2022', rootDir: 'src', outDir: 'dist', types: [], skipLibCheck: true, strict: true };
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['src/server.ts'] }));
    if (build === 'external') run(TSC, ['-p', '.', '--sourceMap'], dir);
    if (build === 'inline') run(TSC, ['-p', '.', '--inlineSourceMap'], dir);
    if (build === 'bundle') {
      const esbuild = require('esbuild') as typeof import('esbuild');
      esbuild.buildSync({ entryPoints: [path.join(dir, 'src/server.ts')], bundle: true, minify: true, sourcemap: true, platform: 'node', logLevel: 'error', outfile: path.join(dir, 'dist/server.js') });
    }
    return new SourceMapFixture(dir, path.join(dir, 'dist/server.js'));
  }

  /** Writes `rel` (relative to the fixture) with `text`. */
  write(rel: string, text: string | Buffer): string {
    const file = path.join(this.dir, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    return file;
  }

  /**
   * Runs the service with the plugin (file exporter, continuous, 1 s windows) under
   * `concurrency` clients for `loadMs`, then SIGTERM (app.close()), and decodes what it wrote.
   */
  async run(options: Record<string, unknown>, extra: { extraScripts?: string[]; loadMs?: number; nodeFlags?: string[] } = {}): Promise<FixtureRun> {
    const outputDir = path.join(this.dir, 'profiles');
    rmSync(outputDir, { recursive: true, force: true });
    const pluginOptions = { appName: 'source-maps', outputDir, cpuThreshold: 0, uploadRate: '1s', profileTypes: { cpu: true, wall: false, heap: true }, ...options };
    const child = spawn(process.execPath, [...(extra.nodeFlags ?? []), this.entry], {
      cwd: this.dir,
      env: {
        ...process.env,
        FASTIFY_PATH: require.resolve('fastify', { paths: [REPO] }),
        PLUGIN_PATH: path.join(REPO, 'dist/index.js'),
        PLUGIN_OPTIONS: JSON.stringify(pluginOptions),
        EXTRA_SCRIPTS: JSON.stringify(extra.extraScripts ?? []),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    try {
      const port = await waitFor(() => /READY (\d+)/.exec(stdout)?.[1], 20_000, () => `the fixture did not start: ${stderr}${stdout}`);
      await load(Number(port), extra.loadMs ?? 3000, 4);
      child.kill('SIGTERM');
      await exited;
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const statsLine = /STATS (.+)/.exec(stdout)?.[1];
    if (statsLine === undefined) throw new Error(`the fixture printed no stats: ${stderr}${stdout}`);
    const files = readdirSync(outputDir).filter((f) => f.endsWith('.pb.gz'));
    const profiles = files.map((file) => ({ file, profile: Profile.decode(gunzipSync(readFileSync(path.join(outputDir, file)))) }));
    return { profiles, stats: JSON.parse(statsLine) as Record<string, unknown>, stdout, stderr };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every frame (function name, file, line) of a profile. */
export function framesOf(profile: Profile): Frame[] {
  const s = profile.stringTable.strings;
  const functions = new Map(profile.function.map((f) => [Number(f.id), f]));
  const frames: Frame[] = [];
  for (const location of profile.location) {
    for (const line of location.line) {
      const fn = functions.get(Number(line.functionId));
      if (fn) frames.push({ name: s[Number(fn.name)], file: s[Number(fn.filename)], line: Number(line.line) });
    }
  }
  return frames;
}

function run(script: string, args: string[], cwd: string): void {
  try {
    execFileSync(process.execPath, [script, ...args], { cwd, stdio: 'pipe' });
  } catch (error) {
    const e = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`${path.basename(script)} ${args.join(' ')} failed: ${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
  }
}

export function lineOf(text: string, needle: string): number {
  const index = text.split('\n').findIndex((l) => l.includes(needle));
  if (index < 0) throw new Error(`${needle} not found`);
  return index + 1;
}

async function waitFor<T>(get: () => T | undefined, ms: number, why: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = get();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(why());
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `concurrency` keep-alive clients sending GET /hot to 127.0.0.1 for `ms`. */
async function load(port: number, ms: number, concurrency: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const end = Date.now() + ms;
  const client = async (): Promise<void> => {
    while (Date.now() < end) {
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/hot', agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    agent.destroy();
  }
}
