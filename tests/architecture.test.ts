/**
 * The layers hold: every import in the repository obeys tests/helpers/import-rules.ts (model imports
 * nothing of ours; db only the migrations; trainer model and db; server model, db and trainer; web the
 * protocol's types; nothing but tests imports tests/ or bench/). And the checker can fail: fed bad
 * imports, it names each one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importsOf, layerViolations, ROOMS } from './helpers/import-rules.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCE = /\.(ts|mts|cts|mjs|cjs|js)$/;
const SKIP = new Set(['node_modules', 'dist', 'fixtures']);

async function sourceFiles(): Promise<{ path: string; text: string }[]> {
  const out: { path: string; text: string }[] = [];
  for (const room of ROOMS) {
    const entries = await readdir(join(ROOT, room), { recursive: true, withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isFile() || !SOURCE.test(e.name)) continue;
      const path = join(e.parentPath, e.name).slice(ROOT.length).replaceAll('\\', '/').replace(/^\//, '');
      if (path.split('/').some((part) => SKIP.has(part))) continue;
      out.push({ path, text: await readFile(join(ROOT, path), 'utf8') });
    }
  }
  return out;
}

test('every import in the repository keeps to the layers', async () => {
  const files = await sourceFiles();
  const rooms = new Set(files.map((f) => f.path.split('/')[0]));
  for (const room of ['model', 'db', 'migrations', 'trainer', 'server', 'web', 'bench', 'tests']) assert.ok(rooms.has(room), `no source files found in ${room}/`);
  assert.ok(files.length > 200, `only ${files.length} files read`);
  const imports = files.reduce((n, f) => n + importsOf(f.path, f.text).filter((i) => i.specifier.startsWith('.')).length, 0);
  assert.ok(imports > 500, `only ${imports} relative imports read`);
  assert.deepEqual(layerViolations(files), []);
});

test('the checker names each import that breaks a layer, and lets the allowed ones through', () => {
  const files = [
    { path: 'trainer/online/x.ts', text: "import { x } from '../../db/index.ts';\nimport { createServer } from '../../server/server.ts';\n" },
    { path: 'model/gpt/y.ts', text: "const m = await import('../../trainer/flags.ts');\nexport {};\n" },
    { path: 'db/z.ts', text: "export * from '../server/errors.ts';\n" },
    { path: 'web/src/a.ts', text: "import type { ServerFrame } from '../../server/protocol.ts';\nimport { MAX_NEW_TOKENS } from '../../server/protocol.ts';\n" },
    { path: 'web/src/b.ts', text: "import { type ServerFrame } from '../../server/protocol.ts';\nimport { app } from '../../server/app.ts';\n" },
    { path: 'server/w.ts', text: "const worker = new Worker(new URL('../bench/lib/stats.ts', import.meta.url));\nimport { h } from '../tests/helpers/tiny-model.ts';\n" },
    { path: 'migrations/2099-01-01-m.ts', text: "import type { Db } from '../db/index.ts';\nimport { sql } from 'kysely';\n" },
    { path: 'server/ok.ts', text: "import { GPT } from '../model/gpt/gpt.ts';\nimport { OnlineTrainer } from '../trainer/online/online-trainer.ts';\nimport { openDatabase } from '../db/index.ts';\nimport { z } from 'zod';\n" },
    { path: 'tests/t.test.ts', text: "import { startLocalServer } from '../bench/lib/local-server.ts';\n" },
  ];
  assert.deepEqual(layerViolations(files), [
    "trainer/online/x.ts:2 imports '../../server/server.ts' (server/server.ts): trainer/ may import only model/, db/",
    "model/gpt/y.ts:1 imports '../../trainer/flags.ts' (trainer/flags.ts): model/ may import nothing outside it",
    "db/z.ts:1 imports '../server/errors.ts' (server/errors.ts): db/ may import only migrations/",
    "web/src/a.ts:2 imports '../../server/protocol.ts' (server/protocol.ts): web/ may import only types of server/protocol.ts",
    "web/src/b.ts:2 imports '../../server/app.ts' (server/app.ts): web/ may import only types of server/protocol.ts",
    "server/w.ts:1 imports '../bench/lib/stats.ts' (bench/lib/stats.ts): server/ may import only model/, db/, trainer/",
    "server/w.ts:2 imports '../tests/helpers/tiny-model.ts' (tests/helpers/tiny-model.ts): server/ may import only model/, db/, trainer/",
    "migrations/2099-01-01-m.ts:1 imports '../db/index.ts' (db/index.ts, types): migrations/ may import nothing outside it",
  ]);
});
