// Who wrote a message: `generated` for replies the model wrote (their rows are created by the server
// when generation starts), `client` for everything a client sent: user turns, and the "assistant"
// turns of a /v1 request's history. Only generated replies may be rated, regenerated, chosen or paired,
// so that text a client wrote can never become training data as if the model had written it.
//
// Existing rows: an assistant row that the server created for a generation has its decoding options
// (written with the empty row) or a model version; client history turns have neither. Client turns
// that an earlier start-up sweep marked `interrupted` get their null finish reason back.
//
// Typed `Kysely<any>` on purpose, as every migration: it describes the database as it was at its time.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('messages')
    .addColumn('origin', 'text', (c) => c.notNull().defaultTo('client'))
    .execute();
  await db
    .updateTable('messages')
    .set({ origin: 'generated' })
    .where('role', '=', 'assistant')
    .where((eb) => eb.or([eb('decoding', 'is not', null), eb('model_version_id', 'is not', null)]))
    .execute();
  await db.updateTable('messages').set({ finish_reason: null }).where('origin', '=', 'client').execute();
  await db.schema.alterTable('messages').addCheckConstraint('messages_origin_check', sql`origin in ('generated', 'client')`).execute();
  // Only the model writes replies, and only replies end with a finish reason.
  await db.schema.alterTable('messages').addCheckConstraint('messages_generated_role_check', sql`origin = 'client' or role = 'assistant'`).execute();
  await db.schema.alterTable('messages').addCheckConstraint('messages_client_finish_check', sql`origin = 'generated' or finish_reason is null`).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').dropConstraint('messages_client_finish_check').execute();
  await db.schema.alterTable('messages').dropConstraint('messages_generated_role_check').execute();
  await db.schema.alterTable('messages').dropConstraint('messages_origin_check').execute();
  await db.schema.alterTable('messages').dropColumn('origin').execute();
}
