// Initial schema of the feedback store: sessions, conversations, the message tree, ratings,
// preference pairs (and which model versions trained on them), model versions, training runs.
//
// Frozen once landed: change the schema with a new, later-named migration, never by editing this file.
// Typed `Kysely<any>` on purpose: a migration describes the database as it was at its time, not the
// current `Database` interface.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sessions')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('sessions_token_hash_key', ['token_hash'])
    .addCheckConstraint('sessions_token_hash_check', sql`token_hash ~ '^[0-9a-f]{64}$'`)
    .execute();

  await db.schema
    .createTable('conversations')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('session_id', 'bigint', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('title', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('conversations_session_updated_idx')
    .on('conversations')
    .columns(['session_id', 'updated_at'])
    .execute();

  await db.schema
    .createTable('model_versions')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('parent_id', 'bigint', (c) => c.references('model_versions.id'))
    .addColumn('checkpoint_path', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('metrics', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('candidate'))
    .addColumn('reasons', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('activated_at', 'timestamptz')
    .addCheckConstraint('model_versions_kind_check', sql`kind in ('policy', 'reward')`)
    .addCheckConstraint(
      'model_versions_status_check',
      sql`status in ('candidate', 'active', 'rejected', 'retired')`,
    )
    .addCheckConstraint('model_versions_sha256_check', sql`sha256 ~ '^[0-9a-f]{64}$'`)
    .addCheckConstraint('model_versions_metrics_check', sql`jsonb_typeof(metrics) = 'object'`)
    .addCheckConstraint('model_versions_reasons_check', sql`jsonb_typeof(reasons) = 'array'`)
    .addCheckConstraint(
      'model_versions_activated_check',
      sql`status <> 'active' or activated_at is not null`,
    )
    .addCheckConstraint('model_versions_parent_check', sql`parent_id <> id`)
    .execute();
  // At most one active version per kind, enforced by the database.
  await db.schema
    .createIndex('model_versions_one_active_per_kind')
    .on('model_versions')
    .column('kind')
    .unique()
    .where(sql.ref('status'), '=', sql.lit('active'))
    .execute();
  await db.schema.createIndex('model_versions_kind_idx').on('model_versions').columns(['kind', 'id']).execute();

  await db.schema
    .createTable('messages')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('conversation_id', 'bigint', (c) =>
      c.notNull().references('conversations.id').onDelete('cascade'),
    )
    .addColumn('parent_id', 'bigint')
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('model_version_id', 'bigint', (c) => c.references('model_versions.id'))
    .addColumn('decoding', 'jsonb')
    .addColumn('finish_reason', 'text')
    .addColumn('prompt_tokens', 'integer')
    .addColumn('completion_tokens', 'integer')
    .addColumn('timings', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // Targets of the composite foreign keys below.
    .addUniqueConstraint('messages_conversation_id_id_key', ['conversation_id', 'id'])
    .addUniqueConstraint('messages_id_parent_id_key', ['id', 'parent_id'])
    // The parent is a message of the same conversation.
    .addForeignKeyConstraint(
      'messages_parent_fkey',
      ['conversation_id', 'parent_id'],
      'messages',
      ['conversation_id', 'id'],
      (fk) => fk.onDelete('cascade'),
    )
    // Parents are inserted first, so they have smaller ids: the tree cannot contain a cycle.
    .addCheckConstraint('messages_parent_check', sql`parent_id < id`)
    .addCheckConstraint('messages_role_check', sql`role in ('system', 'user', 'assistant')`)
    .addCheckConstraint(
      'messages_finish_reason_check',
      sql`finish_reason in ('stop', 'length', 'cancelled', 'error')`,
    )
    .addCheckConstraint(
      'messages_tokens_check',
      sql`prompt_tokens >= 0 and completion_tokens >= 0`,
    )
    .addCheckConstraint('messages_decoding_check', sql`jsonb_typeof(decoding) = 'object'`)
    .addCheckConstraint('messages_timings_check', sql`jsonb_typeof(timings) = 'object'`)
    .execute();
  await db.schema.createIndex('messages_parent_idx').on('messages').column('parent_id').execute();
  await db.schema
    .createIndex('messages_model_version_idx')
    .on('messages')
    .column('model_version_id')
    .execute();

  await db.schema
    .createTable('ratings')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('message_id', 'bigint', (c) => c.notNull().references('messages.id').onDelete('cascade'))
    .addColumn('session_id', 'bigint', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('value', 'smallint', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('ratings_session_message_key', ['session_id', 'message_id'])
    .addCheckConstraint('ratings_value_check', sql`value in (-1, 1)`)
    .execute();
  await db.schema.createIndex('ratings_message_idx').on('ratings').column('message_id').execute();

  await db.schema
    .createTable('preference_pairs')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('prompt_message_id', 'bigint', (c) =>
      c.references('messages.id').onDelete('cascade'),
    )
    .addColumn('chosen_message_id', 'bigint')
    .addColumn('rejected_message_id', 'bigint')
    .addColumn('prompt_context', 'jsonb')
    .addColumn('chosen_text', 'text')
    .addColumn('rejected_text', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // Both replies exist and are children of the prompt message.
    .addForeignKeyConstraint(
      'preference_pairs_chosen_fkey',
      ['chosen_message_id', 'prompt_message_id'],
      'messages',
      ['id', 'parent_id'],
      (fk) => fk.onDelete('cascade'),
    )
    .addForeignKeyConstraint(
      'preference_pairs_rejected_fkey',
      ['rejected_message_id', 'prompt_message_id'],
      'messages',
      ['id', 'parent_id'],
      (fk) => fk.onDelete('cascade'),
    )
    .addUniqueConstraint('preference_pairs_chosen_rejected_key', [
      'chosen_message_id',
      'rejected_message_id',
    ])
    .addCheckConstraint(
      'preference_pairs_source_check',
      sql`source in ('siblings', 'compare', 'import', 'bootstrap')`,
    )
    .addCheckConstraint(
      'preference_pairs_distinct_check',
      sql`chosen_message_id <> rejected_message_id and chosen_text <> rejected_text`,
    )
    // Message pairs reference messages; imported pairs carry their text. Exactly one form, by source.
    .addCheckConstraint(
      'preference_pairs_form_check',
      sql`(
        source in ('siblings', 'compare')
        and prompt_message_id is not null and chosen_message_id is not null and rejected_message_id is not null
        and prompt_context is null and chosen_text is null and rejected_text is null
      ) or (
        source in ('import', 'bootstrap')
        and prompt_message_id is null and chosen_message_id is null and rejected_message_id is null
        and jsonb_typeof(prompt_context) = 'array' and chosen_text is not null and rejected_text is not null
      )`,
    )
    .execute();
  await db.schema
    .createIndex('preference_pairs_prompt_idx')
    .on('preference_pairs')
    .column('prompt_message_id')
    .execute();
  await db.schema
    .createIndex('preference_pairs_rejected_idx')
    .on('preference_pairs')
    .column('rejected_message_id')
    .execute();
  // Imported text pairs are unique by content (md5 keeps the index entries small).
  await sql`
    create unique index preference_pairs_text_key on preference_pairs
      (md5(prompt_context::text), md5(chosen_text), md5(rejected_text))
      where prompt_context is not null
  `.execute(db);

  await db.schema
    .createTable('preference_pair_uses')
    .addColumn('pair_id', 'bigint', (c) =>
      c.notNull().references('preference_pairs.id').onDelete('cascade'),
    )
    .addColumn('model_version_id', 'bigint', (c) =>
      c.notNull().references('model_versions.id').onDelete('cascade'),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('preference_pair_uses_pkey', ['pair_id', 'model_version_id'])
    .execute();
  await db.schema
    .createIndex('preference_pair_uses_model_version_idx')
    .on('preference_pair_uses')
    .column('model_version_id')
    .execute();

  await db.schema
    .createTable('training_runs')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
    .addColumn('config', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('metrics', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('policy_version_id', 'bigint', (c) => c.references('model_versions.id'))
    .addColumn('reward_version_id', 'bigint', (c) => c.references('model_versions.id'))
    .addCheckConstraint(
      'training_runs_status_check',
      sql`status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')`,
    )
    .addCheckConstraint(
      'training_runs_finished_check',
      sql`(status in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)`,
    )
    .addCheckConstraint(
      'training_runs_started_check',
      sql`status <> 'running' or started_at is not null`,
    )
    .addCheckConstraint('training_runs_config_check', sql`jsonb_typeof(config) = 'object'`)
    .addCheckConstraint('training_runs_metrics_check', sql`jsonb_typeof(metrics) = 'object'`)
    .execute();
  // Only one run at a time, across every process sharing the database.
  await db.schema
    .createIndex('training_runs_one_running')
    .on('training_runs')
    .column('status')
    .unique()
    .where(sql.ref('status'), '=', sql.lit('running'))
    .execute();
  await db.schema.createIndex('training_runs_status_idx').on('training_runs').columns(['status', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'training_runs',
    'preference_pair_uses',
    'preference_pairs',
    'ratings',
    'messages',
    'model_versions',
    'conversations',
    'sessions',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
