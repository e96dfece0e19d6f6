/**
 * The layering of the repository as a checkable rule. Every top-level folder is a room; a file may
 * import anything in its own room and, from other rooms, only what RULES allows. Imports are read with
 * the TypeScript parser: static `import` / `export … from`, dynamic `import()`, and `new URL('…',
 * import.meta.url)` naming a code file (how worker threads and lazily loaded modules are found).
 */
import { posix } from 'node:path';
import ts from 'typescript';

type Room = 'model' | 'db' | 'migrations' | 'trainer' | 'server' | 'web' | 'bench' | 'tests' | 'examples';

/** A room another room may use: all of it, or only the type exports of one file. */
type Allowed = Room | { typesOf: string };

/**
 * model: the GPT, tokenizer, decoding, checkpoints — nothing of ours.
 * db: the feedback store — only the migrations (found by path, never imported as code).
 * migrations: nothing of ours (they speak kysely alone, so old migrations never change with the code).
 * trainer: model and db. server: model, db and trainer (the embedded online trainer).
 * web: the wire protocol's types only. bench: everything it measures, never tests.
 * examples: nothing of ours (loaded by path, e.g. a PPO reward module).
 * tests: anything. Nothing but tests imports tests/ or bench/.
 */
const RULES: Record<Room, Allowed[] | 'anything'> = {
  model: [],
  db: ['migrations'],
  migrations: [],
  trainer: ['model', 'db'],
  server: ['model', 'db', 'trainer'],
  web: [{ typesOf: 'server/protocol.ts' }],
  bench: ['model', 'db', 'trainer', 'server'],
  examples: [],
  tests: 'anything',
};

export const ROOMS = Object.keys(RULES) as Room[];

interface Import {
  /** As written. */
  specifier: string;
  /** 1-based. */
  line: number;
  /** `import type` / `export type`, or an import whose every name is a type. */
  typeOnly: boolean;
}

const CODE = /\.(ts|mts|cts|mjs|cjs|js)$/;

/** The imports of one source file (all of them; bare package specifiers included). */
export function importsOf(path: string, text: string): Import[] {
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Import[] = [];
  const add = (literal: ts.Node, typeOnly: boolean) => {
    if (!ts.isStringLiteralLike(literal)) return;
    out.push({ specifier: literal.text, line: file.getLineAndCharacterOfPosition(literal.getStart()).line + 1, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const named = clause?.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings.elements : undefined;
      const allTypes = !!clause && (clause.isTypeOnly || (!clause.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      add(node.moduleSpecifier, node.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments.length > 0) {
      add(node.arguments[0], false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true);
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL' && node.arguments?.length === 2) {
      const [target, base] = node.arguments;
      if (ts.isStringLiteralLike(target) && CODE.test(target.text) && base.getText(file).replace(/\s/g, '') === 'import.meta.url') add(target, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return out;
}

/** The room of a repository-relative path (forward slashes), or undefined for a file at the root. */
function roomOf(path: string): Room | undefined {
  const top = path.split('/')[0];
  return (ROOMS as string[]).includes(top) && path.includes('/') ? (top as Room) : undefined;
}

/**
 * Every import of `files` (repository-relative paths and their text) that breaks RULES, as a line
 * naming the importing file and line, the import, and what that room may use. Empty when all is well.
 */
export function layerViolations(files: readonly { path: string; text: string }[]): string[] {
  const problems: string[] = [];
  for (const { path, text } of files) {
    const from = roomOf(path);
    if (!from) continue;
    const rule = RULES[from];
    if (rule === 'anything') continue;
    for (const imp of importsOf(path, text)) {
      if (!imp.specifier.startsWith('.')) continue; // a package, not ours
      const target = posix.normalize(posix.join(posix.dirname(path), imp.specifier));
      const to = roomOf(target);
      if (to === from) continue;
      const ok = rule.some((a) => (typeof a === 'string' ? a === to : a.typesOf === target && imp.typeOnly));
      if (!ok) {
        const allowed = rule.map((a) => (typeof a === 'string' ? `${a}/` : `types of ${a.typesOf}`)).join(', ');
        problems.push(`${path}:${imp.line} imports '${imp.specifier}' (${target}${imp.typeOnly ? ', types' : ''}): ${from}/ may import ${allowed ? `only ${allowed}` : 'nothing outside it'}`);
      }
    }
  }
  return problems;
}
