/**
 * File names as profiles send them: relative to the application root, never an absolute path of
 * the machine (which leaks the deploy layout and splits one function into many when the deploy
 * folder changes between releases).
 *
 *   <root>/src/server.ts                       -> src/server.ts
 *   /any/where/node_modules/fastify/lib/x.js   -> node_modules/fastify/lib/x.js
 *   /elsewhere/some-lib/dist/y.js              -> some-lib/dist/y.js   (its package.json "name")
 *   webpack://app/./src/x.ts                   -> src/x.ts   (a bundle's source, as webpack names it)
 *   node:internal/...                          -> unchanged (so is anything that is not a path)
 *
 * The root is an explicit directory, or the directory of the nearest package.json above the entry
 * script (`require.main.filename`, else `process.argv[1]`; the current directory when the entry
 * script is a tool inside node_modules, e.g. a process manager). It is found lazily with
 * fs.promises, like the package of a file outside the root (one read per directory, cached).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

export interface PathCleanerOptions {
  /** the application root; undefined: found from the entry script */
  root?: string;
  /** true: send file names unchanged */
  absolutePaths: boolean;
}

const WEBPACK_SOURCE = /^webpack:\/\/[^/]*\//;

/** Directories whose package.json was looked up, at most; past it the lookup is not cached. */
const MAX_CACHED_DIRS = 10_000;

interface PackageDir {
  dir: string;
  name?: string;
}

export class PathCleaner {
  private root?: string;
  private rootLookup?: Promise<string>;
  /** directory -> nearest package directory at or above it (undefined: none) */
  private readonly packages = new Map<string, Promise<PackageDir | undefined>>();
  /** files outside the root -> their cleaned name, once their package is known */
  private readonly outside = new Map<string, string>();

  constructor(private readonly options: PathCleanerOptions) {
    if (options.root !== undefined) this.root = path.resolve(options.root);
  }

  /** Finds what clean() needs for these file names (the root, packages of files outside it). */
  async prepare(files: Iterable<string>): Promise<void> {
    if (this.options.absolutePaths) return;
    const root = await this.findRoot();
    const pending: Promise<void>[] = [];
    for (const file of files) {
      if (!isFilePath(file) || this.outside.has(file) || nodeModulesPart(file) !== undefined || isInside(root, file)) continue;
      pending.push(
        this.packageOf(path.dirname(file)).then((pkg) => {
          const rel = pkg === undefined ? path.basename(file) : joinPosix(pkg.name ?? path.basename(pkg.dir), path.relative(pkg.dir, file));
          if (this.outside.size < MAX_CACHED_DIRS) this.outside.set(file, rel);
        }),
      );
    }
    await Promise.all(pending);
  }

  /** The name to send for `file`; call prepare() with it first (else a file outside the root becomes its base name). */
  clean(file: string): string {
    if (this.options.absolutePaths) return file;
    // webpack names its sources webpack://<namespace>/./src/x.ts: the path in the project is what counts
    if (WEBPACK_SOURCE.test(file)) return path.posix.normalize(file.replace(WEBPACK_SOURCE, '')).replace(/^(\.\.\/)+/, '');
    if (!isFilePath(file)) return file;
    const inModules = nodeModulesPart(file);
    if (inModules !== undefined) return `node_modules/${inModules}`;
    const root = this.root;
    if (root !== undefined && isInside(root, file)) return toPosix(path.relative(root, file));
    return this.outside.get(file) ?? path.basename(file);
  }

  private findRoot(): Promise<string> {
    if (this.root !== undefined) return Promise.resolve(this.root);
    this.rootLookup ??= (async () => {
      const entry = require.main?.filename ?? process.argv[1];
      let root: string | undefined;
      if (entry !== undefined && nodeModulesPart(path.resolve(entry)) === undefined) {
        root = (await this.packageOf(path.dirname(path.resolve(entry))))?.dir;
      }
      root ??= (await this.packageOf(process.cwd()))?.dir ?? process.cwd();
      this.root = root;
      return root;
    })();
    return this.rootLookup;
  }

  private packageOf(dir: string): Promise<PackageDir | undefined> {
    let found = this.packages.get(dir);
    if (found === undefined) {
      found = (async () => {
        const text = await fsp.readFile(path.join(dir, 'package.json'), 'utf8').catch(() => undefined);
        if (text !== undefined) return { dir, name: packageName(text) };
        const parent = path.dirname(dir);
        return parent === dir ? undefined : this.packageOf(parent);
      })();
      if (this.packages.size < MAX_CACHED_DIRS) this.packages.set(dir, found);
    }
    return found;
  }
}

function packageName(json: string): string | undefined {
  try {
    const name = (JSON.parse(json) as { name?: unknown }).name;
    return typeof name === 'string' && name !== '' && !name.includes('..') ? name : undefined;
  } catch {
    return undefined;
  }
}

/** An absolute file path (not `node:…`, not a URL, not an eval script). */
export function isFilePath(file: string): boolean {
  return file !== '' && path.isAbsolute(file);
}

/** `<package>/<path>` after the last node_modules folder of `file`, or undefined. */
function nodeModulesPart(file: string): string | undefined {
  const posix = toPosix(file);
  const at = posix.lastIndexOf('/node_modules/');
  return at < 0 ? undefined : posix.slice(at + '/node_modules/'.length);
}

function isInside(root: string, file: string): boolean {
  const rel = path.relative(root, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}

function joinPosix(a: string, b: string): string {
  return `${a}/${toPosix(b)}`;
}
