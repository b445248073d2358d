export { PostgresBroker, createPostgresBroker } from './postgres-broker.js';
export type { PostgresBrokerConfig } from './postgres-broker.js';
export { PostgresResultBackend, createPostgresResultBackend } from './result-backend.js';
export type { PostgresResultBackendConfig } from './result-backend.js';
export { PgQueue } from './queue.js';
export { PgAdapter } from './consumer.js';
export type { NackVerdict, PgMessage, PgQueueConfig, PostgresPublishOptions } from './queue.js';
export { PgBroadcast, MAX_INLINE_PAYLOAD_BYTES } from './broadcast.js';
export { Database } from './database.js';
export type { DatabaseConfig, SqlClient } from './database.js';
export { Listener } from './listener.js';
export type { ListenHandle, ListenerHost } from './listener.js';
export { MIGRATIONS, SCHEMA_VERSION, migrationSql, ensureSchema, currentVersion } from './schema.js';
export type { Migration, SchemaClient } from './schema.js';
export { PostgresErrorCode, classifyError } from './errors.js';
export type { PostgresErrorCodeValue } from './errors.js';
export {
  DEFAULT_BROKER_OPTIONS,
  DEFAULT_RESULT_BACKEND_OPTIONS,
  DRIVER_PARAMS,
  resolveBrokerOptions,
  resolveResultBackendOptions,
} from './options.js';
export type {
  PostgresBrokerOptions,
  PostgresCommonOptions,
  PostgresResultBackendOptions,
  ResolvedBrokerOptions,
  ResolvedResultBackendOptions,
} from './options.js';
export { channelName, ChannelKind, quoteIdent } from './sql.js';
