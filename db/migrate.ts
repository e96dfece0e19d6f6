// Runs the migrations in migrations/ (timestamp-prefixed TypeScript files exporting `up` and `down`)
// with kysely's Migrator. The .ts files are imported at run time, so this runs under tsx.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Migrator, NO_MIGRATIONS, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely';

const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export interface MigrationReport {
  migration: string;
  direction: 'Up' | 'Down';
  /**
   * `RolledBack`: it ran, but a later migration of the same run failed. Kysely runs a whole batch in
   * one transaction on PostgreSQL and PGlite, so a failed run leaves the schema as it was.
   */
  status: 'Success' | 'Error' | 'NotExecuted' | 'RolledBack';
}

interface MigrationState {
  migration: string;
  /** Undefined while pending. */
  executedAt?: Date;
}

/**
 * A migration run failed and was rolled back as a whole. `migration` names the failing migration
 * (undefined when the run failed before any migration, e.g. a file that does not load); `results`
 * tells what happened to each migration of the run.
 */
export class MigrationError extends Error {
  readonly migration: string | undefined;
  readonly results: MigrationReport[];
  constructor(migration: string | undefined, cause: unknown, results: MigrationReport[]) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(migration ? `migration "${migration}" failed: ${reason}` : `migrations failed: ${reason}`, { cause });
    this.name = 'MigrationError';
    this.migration = migration;
    this.results = results;
  }
}

interface MigrateOptions {
  /** Folder of migration files (default: the project's migrations/). */
  migrationsDir?: string;
}

/**
 * The migration files of a folder, imported by file URL (whatever the platform's path syntax): every
 * `.ts`, `.mts`, `.js` or `.mjs` file exporting `up` (and `down`), keyed by its name without extension.
 */
function folderMigrations(folder: string): MigrationProvider {
  return {
    async getMigrations() {
      const migrations: Record<string, Migration> = {};
      for (const file of (await fs.readdir(folder)).sort()) {
        if (!/\.(m?ts|m?js)$/.test(file) || /\.d\.m?ts$/.test(file)) continue;
        const module = (await import(pathToFileURL(path.join(folder, file)).href)) as Partial<Migration> & { default?: Migration };
        const migration = typeof module.up === 'function' ? (module as Migration) : module.default;
        if (migration && typeof migration.up === 'function') migrations[file.slice(0, file.lastIndexOf('.'))] = migration;
      }
      return migrations;
    },
  };
}

function migrator(db: Kysely<any>, { migrationsDir = MIGRATIONS_DIR }: MigrateOptions): Migrator {
  return new Migrator({ db, provider: folderMigrations(migrationsDir) });
}

function report({ error, results = [] }: MigrationResultSet): MigrationReport[] {
  const reports = results.map(({ migrationName, direction, status }) => ({
    migration: migrationName,
    direction,
    status,
  }));
  if (error !== undefined) {
    const rolledBack = reports.map((r) => (r.status === 'Success' ? { ...r, status: 'RolledBack' as const } : r));
    throw new MigrationError(reports.find((r) => r.status === 'Error')?.migration, error, rolledBack);
  }
  return reports;
}

/** Applies every pending migration; throws a MigrationError naming the one that failed. */
export async function migrateToLatest(db: Kysely<any>, options: MigrateOptions = {}): Promise<MigrationReport[]> {
  return report(await migrator(db, options).migrateToLatest());
}

/** Reverts the latest migration, or with `all` every migration. */
export async function migrateDown(
  db: Kysely<any>,
  options: MigrateOptions & { all?: boolean } = {},
): Promise<MigrationReport[]> {
  const m = migrator(db, options);
  return report(await (options.all ? m.migrateTo(NO_MIGRATIONS) : m.migrateDown()));
}

/** Every known migration, in order, with when it was applied. */
export async function migrationStatus(db: Kysely<any>, options: MigrateOptions = {}): Promise<MigrationState[]> {
  const migrations = await migrator(db, options).getMigrations();
  return migrations.map(({ name, executedAt }) => ({ migration: name, executedAt }));
}
