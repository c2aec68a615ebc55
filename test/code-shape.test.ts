/**
 * The code-shape rule (CONTRIBUTING.md) on src/: no class over ~150 lines, no function over ~60,
 * unless a `// long: <reason>` comment before it says why (see test/helpers/code-shape.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { MAX_CLASS_LINES, MAX_FUNCTION_LINES, shapeProblems, sourceFiles } from './helpers/code-shape';

const ROOT = path.join(__dirname, '..');

describe('code shape', () => {
  it(`src/ has no class over ${MAX_CLASS_LINES} lines and no function over ${MAX_FUNCTION_LINES} without a reason`, () => {
    const files = sourceFiles(path.join(ROOT, 'src'));
    expect(files.length).toBeGreaterThan(50);
    const problems = files.flatMap((file) => shapeProblems(path.relative(ROOT, file), fs.readFileSync(file, 'utf8')));
    expect(problems.map((p) => `${p.file}:${p.line} ${p.kind} ${p.name}: ${p.lines} lines${p.marker === undefined ? '' : `, marker without a real reason ("${p.marker}")`}`)).toEqual([]);
  });

  const body = (lines: number): string => Array.from({ length: lines - 2 }, (_, i) => `  const v${i} = ${i};`).join('\n');
  const fn = (lines: number, before = ''): string => `${before}function work(): void {\n${body(lines)}\n}\n`;

  it('measures functions, arrows, methods and classes; a reason before one lets it be long', () => {
    expect(shapeProblems('a.ts', fn(MAX_FUNCTION_LINES))).toEqual([]);
    expect(shapeProblems('a.ts', fn(MAX_FUNCTION_LINES + 1))).toEqual([{ file: 'a.ts', line: 1, name: 'work', kind: 'function', lines: 61 }]);
    expect(shapeProblems('a.ts', fn(70, '// long: one table of cases, read top to bottom\n'))).toEqual([]);
    expect(shapeProblems('a.ts', fn(70, '/**\n * Does the work.\n * long: one table of cases, read top to bottom\n */\n'))).toEqual([]);
    const arrow = `/** x */\nexport const handler = async (): Promise<void> => {\n${body(70)}\n};\n`;
    expect(shapeProblems('a.ts', arrow)).toMatchObject([{ name: 'handler', kind: 'function', lines: 70 }]);
    const methods = Array.from({ length: 16 }, (_, i) => `  m${i}(): void {\n${body(10)}\n  }`).join('\n');
    expect(shapeProblems('a.ts', `class Big {\n${methods}\n}\n`)).toMatchObject([{ name: 'Big', kind: 'class', lines: 162 }]);
  });

  it('a marker without a real reason does not count', () => {
    expect(shapeProblems('a.ts', fn(70, '// long: yes\n'))).toMatchObject([{ name: 'work', marker: 'yes' }]);
  });
});
