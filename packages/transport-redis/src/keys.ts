/**
 * Every key of one queue starts with the hash tag `{<prefix>:<queue>}`, so they all live in one
 * slot and one Lua script may touch them on Redis Cluster.
 */
export interface QueueKeys {
  readonly tag: string;
  /** Ready lists, index = priority 0..9. */
  readonly ready: readonly string[];
  readonly delayed: string;
  readonly active: string;
  readonly msg: string;
  readonly marker: string;
  readonly seq: string;
  readonly dead: string;
  readonly deadInfo: string;
}

export const PRIORITY_LEVELS = 10;

export function queueKeys(prefix: string, queue: string): QueueKeys {
  const tag = `{${prefix}:${queue}}`;
  return {
    tag,
    ready: Array.from({ length: PRIORITY_LEVELS }, (_, p) => `${tag}:ready:${p}`),
    delayed: `${tag}:delayed`,
    active: `${tag}:active`,
    msg: `${tag}:msg`,
    marker: `${tag}:marker`,
    seq: `${tag}:seq`,
    dead: `${tag}:dead`,
    deadInfo: `${tag}:dead-info`,
  };
}

/** The glob that matches every key of every queue under `prefix` (for SCAN in tooling and tests). */
export function prefixPattern(prefix: string): string {
  return `{${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}:*`;
}

/** The pub/sub channel of a broadcast channel name. */
export function broadcastChannel(prefix: string, channel: string): string {
  return `${prefix}:broadcast:${channel}`;
}
