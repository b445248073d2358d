import { createHash } from 'node:crypto';

/** `name` as a quoted SQL identifier: `my"app` → `"my""app"`. Every schema and channel name goes through this. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `value` as a quoted SQL string literal (for the generated migration SQL, never for user data). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** What a notification channel is for. */
export const ChannelKind = {
  /** Something became ready in a queue (payload: '' now, or the ms until the earliest delay is due). */
  QUEUE: 'q',
  /** A broadcast channel (payload: the message, or a reference to its spilled row). */
  BROADCAST: 'b',
  /** Ready results of the schema (payload: md5 hex of task ids, one per line). */
  RESULTS: 'r',
} as const;
/** One of {@link ChannelKind}'s values. */
export type ChannelKind = (typeof ChannelKind)[keyof typeof ChannelKind];

/**
 * The NOTIFY channel of a queue, broadcast channel or the results of a schema. Channel names are
 * identifiers of at most 63 bytes and queue names are not bounded, so the name is a digest:
 * `celeriac_<kind>_<32 hex>` (44 bytes), the same in every process for the same schema and name.
 */
export function channelName(schema: string, kind: ChannelKind, name = ''): string {
  const digest = createHash('sha256').update(`${schema}\0${kind}\0${name}`).digest('hex').slice(0, 32);
  return `celeriac_${kind}_${digest}`;
}

/** The md5 hex of a task id, as the results channel carries it (fixed size, whatever the id). */
export function taskDigest(taskId: string): string {
  return createHash('md5').update(taskId, 'utf8').digest('hex');
}

/** A key for `pg_advisory_xact_lock` that serialises migrations of one schema. */
export function migrationLockKey(schema: string): string {
  // A signed 64-bit integer, as text (pg sends it as a bigint parameter).
  return createHash('sha256').update(`celeriac-migrate\0${schema}`).digest().readBigInt64BE(0).toString();
}
