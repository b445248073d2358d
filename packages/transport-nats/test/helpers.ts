import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { serverUrl } from '@celeriac/test-servers';

export const natsUrl = new URL(serverUrl('nats'));

/** A prefix no other run or test file uses. */
export function uniquePrefix(kind: string): string {
  return `t_${kind}_${randomBytes(4).toString('hex')}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function adminConnection(): Promise<NatsConnection> {
  return connect({ servers: `${natsUrl.hostname}:${natsUrl.port === '' ? 4222 : natsUrl.port}` });
}

/** Delete every stream (KV buckets are streams too) whose name starts with `prefix`. Returns their names. */
export async function deleteStreams(prefix: string): Promise<string[]> {
  const nc = await adminConnection();
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(prefix) || name.startsWith(`KV_${prefix}`)) names.push(name);
    }
    for (const name of names) await jsm.streams.delete(name);
    return names;
  } finally {
    await nc.close();
  }
}

/** Delete the durable consumers the broker created for these queues (every priority level). */
export async function deleteQueueConsumers(prefix: string, queues: readonly string[]): Promise<void> {
  const nc = await adminConnection();
  try {
    const jsm = await jetstreamManager(nc);
    const stream = `${prefix}_tasks`;
    const wanted = new Set(queues.map((q) => `q_${q}`));
    for await (const ci of jsm.consumers.list(stream)) {
      const base = ci.name.split('=')[0]!;
      if (wanted.has(base)) await jsm.consumers.delete(stream, ci.name);
    }
    for (const q of queues) {
      await jsm.streams.purge(stream, { filter: `${prefix}.tasks.${q}` }).catch(() => undefined);
      await jsm.streams.purge(stream, { filter: `${prefix}.tasks.${q}.>` }).catch(() => undefined);
      await jsm.streams.purge(`${prefix}_delayed`, { filter: `${prefix}.delayed.${q}` }).catch(() => undefined);
      await jsm.streams.purge(`${prefix}_delayed`, { filter: `${prefix}.delayed.${q}.>` }).catch(() => undefined);
      await jsm.streams.purge(`${prefix}_dead`, { filter: `${prefix}.dead.${q}` }).catch(() => undefined);
    }
  } catch (err) {
    // the stream may not exist yet when a test failed before creating it
    if (!String(err).includes('stream not found')) throw err;
  } finally {
    await nc.close();
  }
}

/** The server URL with these query parameters (the transport's options). */
export function urlWith(params: Record<string, string | number>, base: string | URL = natsUrl): string {
  const u = new URL(base);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
  return u.toString();
}
