// The feedback store: connection, migrations, row types and repositories (all SQL lives in repos/).
// Shared by the server and the trainer; it knows nothing about HTTP or WebSockets.
export * from './schema.ts';
export * from './util.ts';
export * from './connect.ts';
export * from './migrate.ts';
export * from './repos/sessions.ts';
export * from './repos/conversations.ts';
export * from './repos/messages.ts';
export * from './repos/ratings.ts';
export * from './repos/pairs.ts';
export * from './repos/feedback.ts';
export * from './repos/model-versions.ts';
export * from './repos/training-runs.ts';
export * from './repos/stats.ts';
export * from './signals.ts';
