/**
 * The code-shape rule of CONTRIBUTING.md, measured: no class over MAX_CLASS_LINES and no
 * function (declaration, method, constructor, accessor, arrow or function expression) over
 * MAX_FUNCTION_LINES, unless a comment just before it gives the reason:
 *
 *   // long: <why this is one piece>          (or the same line inside its /** ... *\/ comment)
 *
 * Lines are counted from the declaration's first token to its closing brace, comments and blank
 * lines included. A nested function is measured on its own and also counts in its parent.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const MAX_CLASS_LINES = 150;
export const MAX_FUNCTION_LINES = 60;

/** A reason of a few words at least: "long: yes" is not one. */
const MARKER = /(?:^|[\s*/])long:[ \t]*(.*)$/m;
const MIN_REASON_LENGTH = 15;

export interface ShapeProblem {
  file: string;
  line: number;
  name: string;
  kind: 'class' | 'function';
  lines: number;
  /** the marker's text when one was found but gave no real reason */
  marker?: string;
}

export function shapeProblems(file: string, text: string): ShapeProblem[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const problems: ShapeProblem[] = [];
  const visit = (node: ts.Node): void => {
    const kind = ts.isClassLike(node) ? 'class' : ts.isFunctionLike(node) && 'body' in node && node.body ? 'function' : undefined;
    if (kind) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const lines = source.getLineAndCharacterOfPosition(node.getEnd()).line - start + 1;
      if (lines > (kind === 'class' ? MAX_CLASS_LINES : MAX_FUNCTION_LINES)) {
        const marker = markerOf(node, source);
        if (marker === undefined || marker.length < MIN_REASON_LENGTH) {
          problems.push({ file, line: start + 1, name: nameOf(node, source), kind, lines, ...(marker === undefined ? {} : { marker }) });
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return problems;
}

/** The reason in the comments before the node (or before the statement or member holding it). */
function markerOf(node: ts.Node, source: ts.SourceFile): string | undefined {
  for (let n: ts.Node = node; !ts.isSourceFile(n); n = n.parent) {
    for (const range of ts.getLeadingCommentRanges(source.text, n.getFullStart()) ?? []) {
      const match = MARKER.exec(source.text.slice(range.pos, range.end));
      if (match) return match[1].replace(/\*\/\s*$/, '').trim();
    }
    if (ts.isStatement(n) || ts.isClassElement(n) || ts.isPropertyAssignment(n)) break;
  }
  return undefined;
}

function nameOf(node: ts.Node, source: ts.SourceFile): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name) return named.name.getText(source);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const holder = node.parent;
  if (holder && (ts.isVariableDeclaration(holder) || ts.isPropertyDeclaration(holder) || ts.isPropertyAssignment(holder))) return holder.name.getText(source);
  return '(anonymous)';
}

export function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}
