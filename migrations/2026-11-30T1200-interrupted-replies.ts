// A reply can end as `interrupted`: the process generating it died (killed, crashed, power loss)
// before it stored the reply's end. Such a row would otherwise keep a null finish_reason for ever and
// look like a reply still being generated; the server marks them at start-up (server/chat/interrupted.ts).
//
// Typed `Kysely<any>` on purpose, as every migration: it describes the database as it was at its time.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').dropConstraint('messages_finish_reason_check').execute();
  await db.schema
    .alterTable('messages')
    .addCheckConstraint(
      'messages_finish_reason_check',
      sql`finish_reason in ('stop', 'length', 'cancelled', 'error', 'interrupted')`,
    )
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  // The older schema has no `interrupted`; `error` is the closest reason it knows (the reply did not finish).
  await db.updateTable('messages').set({ finish_reason: 'error' }).where('finish_reason', '=', 'interrupted').execute();
  await db.schema.alterTable('messages').dropConstraint('messages_finish_reason_check').execute();
  await db.schema
    .alterTable('messages')
    .addCheckConstraint('messages_finish_reason_check', sql`finish_reason in ('stop', 'length', 'cancelled', 'error')`)
    .execute();
}
