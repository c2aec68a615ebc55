/**
 * Every ```ts / ```js block in README.md and docs/*.md is type-checked against the sources, so a
 * renamed option, a changed signature or a missing import in the docs fails here instead of in a
 * reader's editor. `fastify-continuous-profiling` resolves to src/index.ts (no build needed);
 * other packages come from node_modules. A block opts out with `<!-- snippet: skip (reason) -->`
 * on the line before its fence (the reason is required); ```sh, ```text and the like are not checked.
 *
 * One TypeScript program holds every snippet, plus one broken on purpose that must fail, so the
 * check itself is shown to catch an error.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.join(__dirname, '..');
const CHECKED = new Set(['ts', 'typescript', 'js', 'javascript']);
const SKIP_MARKER = /^<!--\s*snippet:\s*skip\b\s*(?:\((.*)\))?\s*-->$/;

interface Snippet {
  /** relative to the repository root */
  file: string;
  /** line of the opening fence (1-based) */
  line: number;
  js: boolean;
  code: string;
  /** the reason given by a skip marker; '' when the marker gives none */
  skip?: string;
}

function extractSnippets(markdown: string, file: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*```\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end])) end++;
    i = end;
    const lang = open[1].toLowerCase();
    if (!CHECKED.has(lang)) continue;
    let before = start - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    const marker = before >= 0 ? SKIP_MARKER.exec(lines[before].trim()) : null;
    snippets.push({
      file,
      line: start + 1,
      js: lang.startsWith('j'),
      code: lines.slice(start + 1, end).join('\n'),
      skip: marker ? (marker[1] ?? '').trim() : undefined,
    });
  }
  return snippets;
}

function docFiles(): string[] {
  const docs = fs.readdirSync(path.join(ROOT, 'docs')).filter((name) => name.endsWith('.md'));
  return ['README.md', ...docs.sort().map((name) => `docs/${name}`)];
}

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  // ES modules: the snippets use top-level await, as an app's entry file does
  module: ts.ModuleKind.ES2022,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  strict: true,
  esModuleInterop: true,
  skipLibCheck: true,
  noEmit: true,
  allowJs: true,
  checkJs: true,
  types: ['node'],
  baseUrl: ROOT,
  paths: { 'fastify-continuous-profiling': ['src/index.ts'], 'fastify-continuous-profiling/worker': ['src/workers/worker.ts'] },
};

/** Type-checks the snippets in one program; the errors of each, as `file:line: message` with the markdown line. */
function typeCheck(snippets: readonly Snippet[]): string[][] {
  const virtual = new Map<string, Snippet>();
  const names = snippets.map((snippet, i) => {
    // next to the sources, so node_modules resolves as it does for the project
    const name = path.join(ROOT, 'test', `__snippet_${i}.${snippet.js ? 'js' : 'ts'}`);
    virtual.set(name, snippet);
    return name;
  });
  const host = ts.createCompilerHost(OPTIONS);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (name) => virtual.has(name) || fileExists.call(host, name);
  host.readFile = (name) => virtual.get(name)?.code ?? readFile.call(host, name);
  host.getSourceFile = (name, languageVersion, ...rest) => {
    const snippet = virtual.get(name);
    // a TS snippet is a module even without an import, so top-level await type-checks
    if (snippet) return ts.createSourceFile(name, snippet.js ? snippet.code : `${snippet.code}\nexport {};\n`, languageVersion, true);
    return getSourceFile.call(host, name, languageVersion, ...rest);
  };
  const program = ts.createProgram(names, OPTIONS, host);
  return names.map((name, i) => {
    const source = program.getSourceFile(name)!;
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    return diagnostics.map((d) => {
      const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line;
      return `${snippets[i].file}:${snippets[i].line + 1 + line}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
  });
}

const snippets = docFiles().flatMap((file) => extractSnippets(fs.readFileSync(path.join(ROOT, file), 'utf8'), file));
const checked = snippets.filter((s) => s.skip === undefined);

/** Broken on purpose: a misspelt option and a method that does not exist. */
const BROKEN: Snippet = {
  file: 'broken.md',
  line: 1,
  js: false,
  code: [
    "import Fastify from 'fastify'",
    "import profilingPlugin from 'fastify-continuous-profiling'",
    'const app = Fastify()',
    "await app.register(profilingPlugin, { appName: 'x', outputDir: 'p', cpuTreshold: 0 })",
    'app.profiler.begin()',
  ].join('\n'),
};

describe('doc snippets', () => {
  let errors: string[][];
  beforeAll(() => {
    errors = typeCheck([...checked, BROKEN]);
  });

  it('finds the code blocks of README.md and every docs page', () => {
    expect(checked.filter((s) => s.file === 'README.md').length).toBeGreaterThan(0);
    expect(new Set(checked.map((s) => s.file)).size).toBeGreaterThanOrEqual(5);
  });

  it('every block type-checks against the sources', () => {
    expect(errors.slice(0, checked.length).flat()).toEqual([]);
  });

  it('the check catches a broken block (line numbers point into the markdown)', () => {
    const broken = errors[checked.length];
    expect(broken).toEqual([
      expect.stringMatching(/^broken\.md:5: TS2769 .*'cpuTreshold' does not exist/),
      expect.stringMatching(/^broken\.md:6: TS2339 Property 'begin' does not exist/),
    ]);
  });

  it('a skipped block says why', () => {
    for (const snippet of snippets.filter((s) => s.skip !== undefined)) {
      expect({ at: `${snippet.file}:${snippet.line}`, reason: snippet.skip }).toEqual({ at: `${snippet.file}:${snippet.line}`, reason: expect.stringMatching(/\w{3,}/) });
    }
  });

  it('extracts only ts/js blocks and reads the skip marker', () => {
    const md = ['```sh', 'npm i x', '```', '<!-- snippet: skip (needs a server) -->', '', '```ts', 'const a = 1', '```', '```js', 'b()', '```'].join('\n');
    expect(extractSnippets(md, 'x.md')).toEqual([
      { file: 'x.md', line: 6, js: false, code: 'const a = 1', skip: 'needs a server' },
      { file: 'x.md', line: 9, js: true, code: 'b()', skip: undefined },
    ]);
  });
});
