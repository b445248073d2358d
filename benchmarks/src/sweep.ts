import { execFile } from 'node:child_process';
import { connect as amqpConnect } from 'amqplib';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { natsConnectOptions } from './driver-raw-nats.js';
import type { ServerKind } from './record.js';

/** What a sweep removed, and why it could not finish. */
export interface SweepResult {
  removed: number;
  note?: string;
}

/**
 * Removes what a row left behind on a server, and only that: every key, queue, exchange or stream
 * whose name contains the row's unique prefix (`cbench` + random letters and digits). A celeriac row
 * cannot delete its transport's queues through the Broker contract, so this runs after every row;
 * for rows that cleaned up themselves it finds nothing.
 */
export async function sweep(kind: ServerKind, url: string, prefix: string): Promise<SweepResult> {
  if (!/^cbench[a-z0-9]{6,}$/.test(prefix)) throw new RangeError(`refusing to sweep an unexpected prefix: ${prefix}`);
  try {
    switch (kind) {
      case 'redis':
        return await sweepRedis(url, prefix);
      case 'nats':
        return await sweepNats(url, prefix);
      case 'amqp':
        return await sweepAmqp(url, prefix);
      case 'postgres':
        return await sweepPostgres(url, prefix);
    }
  } catch (err) {
    return { removed: 0, note: `could not sweep ${kind}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function sweepRedis(url: string, prefix: string): Promise<SweepResult> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  let removed = 0;
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) removed += await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return { removed };
}

async function sweepNats(url: string, prefix: string): Promise<SweepResult> {
  const nc = await natsConnect({ ...natsConnectOptions(url), reconnect: false });
  let removed = 0;
  try {
    const jsm = await jetstreamManager(nc);
    const doomed: string[] = [];
    for await (const info of jsm.streams.list()) {
      const subjects = info.config.subjects ?? [];
      if (info.config.name.toLowerCase().includes(prefix) || subjects.some((s) => s.toLowerCase().includes(prefix))) {
        doomed.push(info.config.name);
      }
    }
    for (const name of doomed) {
      if (await jsm.streams.delete(name)) removed++;
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
  return { removed };
}

/** Every schema whose name contains the prefix (celeriac's, pg-boss's and graphile-worker's of the row). */
async function sweepPostgres(url: string, prefix: string): Promise<SweepResult> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  await c.connect();
  let removed = 0;
  try {
    const { rows } = await c.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE strpos(nspname, $1) > 0", [prefix]);
    for (const { name } of rows) {
      await c.query(`DROP SCHEMA IF EXISTS "${name.replace(/"/g, '""')}" CASCADE`);
      removed++;
    }
  } finally {
    await c.end().catch(() => undefined);
  }
  return { removed };
}

function rabbitmqctl(args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('rabbitmqctl', ['-q', '--no-table-headers', ...args], { timeout: 20_000 }, (err, stdout) => {
      if (err !== null) reject(err);
      else resolve(stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0));
    });
  });
}

/** AMQP 0-9-1 cannot list queues; `rabbitmqctl` can, where the server runs on this machine. */
async function sweepAmqp(url: string, prefix: string): Promise<SweepResult> {
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
    return { removed: 0, note: `cannot list queues on ${u.hostname}: remove queues and exchanges named *${prefix}* by hand` };
  }
  const vhost = u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : '/';
  let queues: string[];
  let exchanges: string[];
  try {
    queues = (await rabbitmqctl(['list_queues', '-p', vhost, 'name'])).filter((n) => n.includes(prefix));
    exchanges = (await rabbitmqctl(['list_exchanges', '-p', vhost, 'name'])).filter((n) => n.includes(prefix));
  } catch (err) {
    return { removed: 0, note: `rabbitmqctl failed (${err instanceof Error ? err.message : String(err)}): remove queues named *${prefix}* by hand` };
  }
  if (queues.length === 0 && exchanges.length === 0) return { removed: 0 };
  const m = await amqpConnect(url);
  let removed = 0;
  try {
    const ch = await m.createChannel();
    ch.on('error', () => undefined);
    for (const q of queues) {
      await ch.deleteQueue(q);
      removed++;
    }
    for (const x of exchanges) {
      await ch.deleteExchange(x);
      removed++;
    }
    await ch.close();
  } finally {
    await m.close().catch(() => undefined);
  }
  return { removed };
}
