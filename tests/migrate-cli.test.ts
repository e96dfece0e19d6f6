/**
 * `npm run migrate -- up | down [--all] | status` as a user runs it (a child process from the repo
 * root): on the embedded database under STATE_DIR, and on a scratch PostgreSQL database when
 * DATABASE_URL is set. Checked for exit codes and what it prints; a bad command or argument exits 2
 * naming it.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DatabaseHandle } from '../db/index.ts';
import { runTs, without, type Ran } from './helpers/run-child.ts';
import { openScratchDatabase } from './helpers/scratch-database.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MIGRATIONS = readdirSync(join(ROOT, 'migrations'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();

// Opening the embedded database takes seconds of CPU; a loaded machine stretches that a lot.
const migrate = (args: string[], env: Record<string, string>) =>
  runTs('db/migrate-cli.ts', args, { env: { ...without('DATABASE_URL', 'STATE_DIR'), ...env }, limitMs: 240_000 });

/** stdout lines after the first ("database: <kind>"), which is checked. */
function body(r: Ran, kind: string): string[] {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr}`);
  const [first, ...rest] = r.stdout.trimEnd().split('\n');
  assert.equal(first, `database: ${kind}`);
  return rest;
}

const statusLine = (applied: boolean, migration: string) => new RegExp(`^${applied ? '\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z' : 'pending {17}'}  ${migration}$`);

interface Target {
  name: string;
  kind: string;
  env(): Promise<Record<string, string>>;
  close(): Promise<void>;
}

function targets(): Target[] {
  let state = '';
  const list: Target[] = [
    {
      name: 'embedded (STATE_DIR)',
      kind: 'pglite',
      env: async () => ({ STATE_DIR: (state = await mkdtemp(join(tmpdir(), 'migrate-cli-'))) }),
      close: () => rm(state, { recursive: true, force: true }),
    },
  ];
  const url = process.env.DATABASE_URL;
  if (url) {
    let handle: DatabaseHandle | null = null;
    list.push({
      name: 'PostgreSQL (scratch database)',
      kind: 'postgres',
      env: async () => {
        handle = await openScratchDatabase(url, 'test_migrate_cli');
        return { DATABASE_URL: handle.connectionString! };
      },
      close: async () => handle?.close(),
    });
  }
  return list;
}

for (const target of targets()) {
  describe(`npm run migrate on ${target.name}`, { timeout: 900_000 }, () => {
    let env: Record<string, string>;
    before(async () => {
      env = await target.env();
    });
    after(() => target.close());

    test('status, up, status, down, down --all: each step printed, the database follows', async () => {
      const pending = body(await migrate(['status'], env), target.kind);
      assert.equal(pending.length, MIGRATIONS.length);
      MIGRATIONS.forEach((m, i) => assert.match(pending[i], statusLine(false, m)));

      assert.deepEqual(body(await migrate(['up'], env), target.kind), MIGRATIONS.map((m) => `Success     up   ${m}`));
      const applied = body(await migrate(['status'], env), target.kind);
      MIGRATIONS.forEach((m, i) => assert.match(applied[i], statusLine(true, m)));
      assert.deepEqual(body(await migrate(['up'], env), target.kind), ['nothing to do']);

      const last = MIGRATIONS.at(-1)!;
      assert.deepEqual(body(await migrate(['down'], env), target.kind), [`Success     down ${last}`]);
      const afterDown = body(await migrate(['status'], env), target.kind);
      MIGRATIONS.forEach((m, i) => assert.match(afterDown[i], statusLine(m !== last, m)));
      assert.deepEqual(body(await migrate(['down', '--all'], env), target.kind), MIGRATIONS.slice(0, -1).reverse().map((m) => `Success     down ${m}`));
    });

    test('a bad command or argument exits 2 naming it, before touching the database', async () => {
      const cases: [string[], RegExp][] = [
        [[], /migrate: no command given/],
        [['sideways'], /migrate: unknown command 'sideways'; expected up, down or status/],
        [['up', '--all'], /migrate: unknown argument '--all' for up/],
        [['down', '--al', '--force'], /migrate: unknown arguments '--al', '--force' for down/],
      ];
      const results = await Promise.all(cases.map(([args]) => migrate(args, env)));
      cases.forEach(([args, message], i) => {
        const r = results[i]!;
        assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
        assert.match(r.stderr, message);
        assert.match(r.stderr, /usage: npm run migrate -- up \| down \[--all\] \| status/);
        assert.equal(r.stdout, '');
      });
    });
  });
}
