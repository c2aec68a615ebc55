/**
 * The README's options table against the TypeBox schema, both ways: every schema key has a row,
 * every option a row names exists (nested ones such as `pprofEndpoints.maxSeconds` in their
 * parent's keys), no option has two rows, and the default column says what DEFAULTS,
 * PPROF_DEFAULTS and ENV_VARIABLES hold. Combined rows (`maxOutputFiles` / `maxOutputBytes`,
 * default `200` / 100 MiB) are split on " / ".
 */
import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { TSchema } from '@sinclair/typebox';
import { parseDuration } from '../src/duration';
import { DEFAULTS, ENV_VARIABLES, OptionsSchema } from '../src/options';
import { PPROF_DEFAULTS, PPROF_ENDPOINTS_KEYS } from '../src/pull/options';

interface Row {
  line: number;
  names: string[];
  defaults: string[];
}

const HEADER = /^\|\s*option\s*\|\s*default\s*\|\s*meaning\s*\|$/;

/** The rows of the first `| option | default | meaning |` table. */
function optionRows(markdown: string): Row[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => HEADER.test(line.trim()));
  if (start < 0) throw new Error('no "| option | default | meaning |" table');
  const rows: Row[] = [];
  for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const [option, defaults] = lines[i].split('|').slice(1, 3).map((cell) => cell.trim());
    const names = option.split(' / ').map((name) => name.replace(/`/g, '').trim());
    const parts = defaults.split(' / ').map((part) => part.trim());
    rows.push({ line: i + 1, names, defaults: names.map((_, n) => parts[names.length === parts.length ? n : 0]) });
  }
  return rows;
}

const properties = OptionsSchema.properties as Record<string, TSchema>;

/** The keys an object option takes: its schema's, or for pprofEndpoints (checked by code, not schema) the resolver's list. */
function nestedKeys(option: string): readonly string[] {
  if (option === 'pprofEndpoints') return PPROF_ENDPOINTS_KEYS;
  const nested = properties[option]?.properties as Record<string, TSchema> | undefined;
  return nested ? Object.keys(nested) : [];
}

function exists(name: string): boolean {
  const [parent, ...rest] = name.split('.');
  if (!(parent in properties)) return false;
  return rest.length === 0 || (rest.length === 1 && nestedKeys(parent).includes(rest[0]));
}

/** A default cell as a value: `700`, `false`, `'10s'` (as ms), `{ cpu: true }`, 100 MiB. */
function parseDefault(cell: string): unknown {
  const text = (/`([^`]*)`/.exec(cell)?.[1] ?? cell).trim();
  const mib = /^(\d+) MiB$/.exec(text);
  if (mib) return Number(mib[1]) * 1024 * 1024;
  if (/^'.*'$/.test(text)) return parseDuration(text.slice(1, -1));
  if (text === 'true' || text === 'false') return text === 'true';
  if (/^\d+$/.test(text)) return Number(text);
  if (/^\{.*\}$/.test(text)) return new Function(`return (${text})`)();
  return text;
}

/** What the default column must say for this option, if the code holds one. */
function expectedDefault(name: string): { value: unknown } | { env: string } | undefined {
  if (name in ENV_VARIABLES) return { env: ENV_VARIABLES[name as keyof typeof ENV_VARIABLES] };
  if (name in DEFAULTS) return { value: DEFAULTS[name as keyof typeof DEFAULTS] };
  const nested = /^pprofEndpoints\.(\w+)$/.exec(name)?.[1];
  if (nested && nested in PPROF_DEFAULTS) return { value: PPROF_DEFAULTS[nested as keyof typeof PPROF_DEFAULTS] };
  return undefined;
}

/** Problems of a table against the code, one line each (empty: in step). */
function tableProblems(rows: readonly Row[]): string[] {
  const problems: string[] = [];
  const documented = rows.flatMap((row) => row.names.map((name, n) => ({ name, line: row.line, cell: row.defaults[n] })));
  const seen = new Set<string>();
  for (const { name, line, cell } of documented) {
    if (!exists(name)) problems.push(`README.md:${line}: "${name}" is not an option`);
    if (seen.has(name)) problems.push(`README.md:${line}: "${name}" has a second row`);
    seen.add(name);
    const expected = expectedDefault(name);
    if (expected && 'env' in expected) {
      const token = /`([^`]*)`/.exec(cell)?.[1] ?? '';
      if (token === '' || !expected.env.endsWith(token)) problems.push(`README.md:${line}: "${name}" defaults to ${expected.env}, the table says ${cell}`);
    } else if (expected && !isDeepStrictEqual(parseDefault(cell), expected.value)) {
      problems.push(`README.md:${line}: "${name}" defaults to ${JSON.stringify(expected.value)}, the table says ${cell}`);
    }
  }
  for (const key of Object.keys(properties)) {
    if (!seen.has(key)) problems.push(`"${key}" (a schema option) has no row in the README options table`);
  }
  return problems;
}

describe('README options table', () => {
  const rows = optionRows(fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8'));

  it('is in step with the schema, both ways, defaults included', () => {
    expect(rows.length).toBeGreaterThan(20);
    expect(tableProblems(rows)).toEqual([]);
  });

  it('reads combined and nested rows', () => {
    const names = rows.flatMap((row) => row.names);
    expect(names).toEqual(expect.arrayContaining(['basicAuthUser', 'basicAuthPassword', 'maxPendingUploads', 'maxPendingBytes', 'pprofEndpoints.maxSeconds']));
    const combined = rows.find((row) => row.names.includes('maxOutputBytes'))!;
    expect(combined.defaults.map(parseDefault)).toEqual([200, 100 * 1024 * 1024]);
  });

  it('names what is out of step: a missing row, an unknown option, a wrong default, a second row', () => {
    const table = [
      '| option | default | meaning |',
      '|---|---|---|',
      ...rows.filter((row) => !row.names.includes('sampleRate')).map((row) => `| ${row.names.map((n) => `\`${n}\``).join(' / ')} | ${row.defaults.join(' / ')} | x |`),
      "| `uploadRate` | `'20s'` | x |",
      '| `cpuTreshold` | `700` | x |',
      '| `pprofEndpoints.maxSecs` | `60` | x |',
    ].join('\n');
    expect(tableProblems(optionRows(table))).toEqual([
      expect.stringMatching(/"uploadRate" has a second row/),
      expect.stringMatching(/"uploadRate" defaults to 15000, the table says `'20s'`/),
      expect.stringMatching(/"cpuTreshold" is not an option/),
      expect.stringMatching(/"pprofEndpoints.maxSecs" is not an option/),
      '"sampleRate" (a schema option) has no row in the README options table',
    ]);
  });
});
