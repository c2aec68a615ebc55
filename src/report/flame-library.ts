/**
 * The flame graph library's browser code, read from node_modules at report time so the HTML can
 * inline it: the page works offline, from a file:// URL, with no CDN and no build-time copy step.
 *
 * d3-flame-graph's browser (UMD) build expects d3 as the global `d3`; its d3 modules each ship a
 * UMD build that adds itself to that global. We inline the whole dependency closure, each package
 * resolved from the package that depends on it and emitted after its own dependencies.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

export const FLAME_GRAPH_PACKAGE = 'd3-flame-graph';

interface PackageJson {
  name?: string;
  version?: string;
  license?: string;
  main?: string;
  unpkg?: string;
  jsdelivr?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
}

export interface InlinedPackage {
  name: string;
  version: string;
  license: string;
  file: string;
}

/** The directory of package `name` as `fromDir` would load it (exports maps allowed). */
function packageRoot(name: string, fromDir: string): string {
  const entry = createRequire(path.join(fromDir, 'noop.js')).resolve(name);
  for (let dir = path.dirname(entry); ; dir = path.dirname(dir)) {
    const manifest = readPackageJson(dir);
    if (manifest?.name === name) return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find the package.json of ${name} above ${entry}`);
  }
}

function readPackageJson(dir: string): PackageJson | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/** The package's browser bundle: the `umd` export condition d3 declares, else unpkg/jsdelivr/main. */
function umdEntry(manifest: PackageJson): string | undefined {
  const exportsField = manifest.exports as Record<string, unknown> | undefined;
  const dot = exportsField?.['.'] as Record<string, unknown> | undefined;
  const candidates = [exportsField?.umd, dot?.umd, manifest.unpkg, manifest.jsdelivr, manifest.main];
  return candidates.find((c): c is string => typeof c === 'string');
}

/** The packages to inline, dependencies before their dependents. */
export function flameGraphPackages(fromDir: string = __dirname): InlinedPackage[] {
  const ordered: InlinedPackage[] = [];
  const seen = new Set<string>();
  const visit = (name: string, parentDir: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const root = packageRoot(name, parentDir);
    const manifest = readPackageJson(root) ?? {};
    for (const dep of Object.keys(manifest.dependencies ?? {})) visit(dep, root);
    const entry = umdEntry(manifest);
    if (!entry) throw new Error(`${name} has no browser (UMD) build to inline`);
    ordered.push({ name, version: manifest.version ?? '?', license: manifest.license ?? 'see package', file: path.join(root, entry) });
  };
  visit(FLAME_GRAPH_PACKAGE, fromDir);
  return ordered;
}

let cached: string | undefined;

/** The JavaScript of d3-flame-graph and the d3 modules it uses, ready to go in a <script>. */
export function flameGraphLibraryScript(): string {
  if (cached === undefined) {
    cached = flameGraphPackages()
      .map((pkg) => `/* ${pkg.name}@${pkg.version}, license ${pkg.license} */\n${readFileSync(pkg.file, 'utf8')}`)
      .join('\n;\n')
      // Inside a <script> element only "</script" ends it; "<\/" means the same to JavaScript.
      .replace(/<\/script/gi, '<\\/script');
  }
  return cached;
}
