import { describe, expect, it } from 'vitest';
import {
  DELAY_LEVELS,
  MAX_DELAY_CHUNK_MS,
  delayRoutingKey,
  planDelay,
  plannedWaitMs,
  queueWord,
  topicMatches,
} from '../src/delay-plan.js';
import { delayExchangeTopology, levelTopology, Names, prefixTopology, queueTopology, type Declaration } from '../src/topology.js';

const DAY = 86_400_000;

describe('planDelay', () => {
  it('holds nothing for a zero delay and rounds fractions up, never down', () => {
    expect(planDelay(0)).toBeUndefined();
    expect(planDelay(0.2)?.chunkMs).toBe(1);
    expect(planDelay(1.0001)?.chunkMs).toBe(2);
  });

  it('visits the set bits of the delay, highest first, and their TTLs add up to the delay', () => {
    expect(planDelay(1)?.levels).toEqual([0]);
    expect(planDelay(10)?.levels).toEqual([3, 1]);
    expect(planDelay(1000)?.levels).toEqual([9, 8, 7, 6, 5, 3]);
    const threeDays = planDelay(3 * DAY)!;
    expect(plannedWaitMs(threeDays)).toBe(3 * DAY);
    expect(threeDays.entryLevel).toBe(27);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const ms = Math.floor(rand() * MAX_DELAY_CHUNK_MS) + 1;
      const plan = planDelay(ms)!;
      expect(plannedWaitMs(plan)).toBe(ms);
      expect(plan.levels.length).toBeLessThanOrEqual(DELAY_LEVELS);
      expect(plan.entryLevel).toBe(Math.floor(Math.log2(ms)));
      expect([...plan.levels].sort((a, b) => b - a)).toEqual(plan.levels);
    }
  });

  it('writes one bit word per level, b31 first', () => {
    const plan = planDelay(5)!;
    expect(plan.bits).toHaveLength(DELAY_LEVELS);
    expect(plan.bits.slice(-3)).toEqual(['1', '0', '1']);
    expect(plan.bits.slice(0, -3).every((b) => b === '0')).toBe(true);
  });

  it('holds at most one pass of 2^32 − 1 ms and carries the rest', () => {
    const max = planDelay(MAX_DELAY_CHUNK_MS)!;
    expect(max.levels).toHaveLength(DELAY_LEVELS);
    expect(max.restMs).toBe(0);
    const long = planDelay(90 * DAY)!;
    expect(long.chunkMs).toBe(MAX_DELAY_CHUNK_MS);
    expect(long.chunkMs + long.restMs).toBe(90 * DAY);
  });

  it('refuses negative and non-finite delays', () => {
    expect(() => planDelay(-1)).toThrow(RangeError);
    expect(() => planDelay(Number.NaN)).toThrow(RangeError);
    expect(() => planDelay(Infinity)).toThrow(RangeError);
  });
});

describe('topic routing words', () => {
  it('matches like a RabbitMQ topic exchange', () => {
    expect(topicMatches('a.*.c', 'a.b.c')).toBe(true);
    expect(topicMatches('a.*.c', 'a.b.b.c')).toBe(false);
    expect(topicMatches('a.#', 'a')).toBe(true);
    expect(topicMatches('a.#', 'a.b.c')).toBe(true);
    expect(topicMatches('*.0.#', 'q.1.0')).toBe(false);
  });

  it('makes any queue name one literal word', () => {
    for (const name of ['a.b', 'a*b', '*', '#', 'emails.high', 'ünï cödé']) {
      const w = queueWord(name);
      expect(w).not.toMatch(/[.*#]/);
      expect(decodeURIComponent(w)).toBe(name);
    }
    expect(queueWord('a.b')).not.toBe(queueWord('a_b'));
  });
});

/**
 * A model of RabbitMQ's routing over the declared topology, with virtual time: publish to an exchange,
 * follow exchange-to-exchange and queue bindings, let each delay queue hold the message for its TTL
 * and dead-letter it with the original routing key. It checks the hop arithmetic against the real
 * declarations (the same objects the broker declares), for delays up to weeks.
 */
class RoutingModel {
  private readonly exchanges = new Map<string, { key: string; to: string; kind: 'queue' | 'exchange' }[]>();
  private readonly queues = new Map<string, { ttl: number | undefined; dlx: string | undefined }>();

  constructor(decls: readonly Declaration[]) {
    for (const d of decls) {
      if (d.kind === 'exchange') this.exchanges.set(d.name, []);
      if (d.kind === 'queue') {
        const ttl = d.args['x-message-ttl'];
        const dlx = d.args['x-dead-letter-exchange'];
        this.queues.set(d.name, { ttl: typeof ttl === 'number' ? ttl : undefined, dlx: typeof dlx === 'string' ? dlx : undefined });
      }
    }
    for (const d of decls) {
      if (d.kind === 'bind-queue') this.exchanges.get(d.exchange)!.push({ key: d.key, to: d.queue, kind: 'queue' });
      if (d.kind === 'bind-exchange') this.exchanges.get(d.source)!.push({ key: d.key, to: d.destination, kind: 'exchange' });
    }
  }

  /** Queues a message published to `exchange` with `key` lands in (exchange-to-exchange followed). */
  route(exchange: string, key: string): string[] {
    const out: string[] = [];
    for (const b of this.exchanges.get(exchange) ?? []) {
      if (!topicMatches(b.key, key)) continue;
      if (b.kind === 'queue') out.push(b.to);
      else out.push(...this.route(b.to, key));
    }
    return out;
  }

  /** Follow the message until it sits in a queue without a TTL; returns that queue, the time, the path. */
  run(exchange: string, key: string): { queue: string; elapsedMs: number; path: string[] } {
    let elapsedMs = 0;
    const path: string[] = [];
    let targets = this.route(exchange, key);
    for (let hops = 0; hops <= DELAY_LEVELS + 1; hops++) {
      if (targets.length !== 1) throw new Error(`routed to ${targets.length} queues: ${targets.join(', ')}`);
      const q = targets[0]!;
      path.push(q);
      const spec = this.queues.get(q)!;
      if (spec.ttl === undefined) return { queue: q, elapsedMs, path };
      elapsedMs += spec.ttl;
      targets = this.route(spec.dlx!, key);
    }
    throw new Error('too many hops');
  }
}

describe('delay topology (routing model)', () => {
  const names = new Names('app');
  const opts = { queueType: 'quorum', delayQueueType: 'classic' } as const;
  const model = new RoutingModel([
    ...prefixTopology(names),
    ...delayExchangeTopology(names),
    ...['default', 'mail.high'].flatMap((q) => [...queueTopology(names, q, opts), ...levelTopology(names, q, opts)]),
  ]);

  function deliver(queue: string, delayMs: number) {
    const plan = planDelay(delayMs)!;
    return model.run(names.levelExchange(plan.entryLevel), delayRoutingKey(queueWord(queue), plan));
  }

  it('brings a delayed message to its own work queue after exactly its delay', () => {
    for (const ms of [1, 2, 3, 10, 50, 999, 1000, 1023, 1024, 60_000, 3_600_000, DAY, 3 * DAY, 14 * DAY, 6 * 7 * DAY]) {
      for (const q of ['default', 'mail.high']) {
        const r = deliver(q, ms);
        expect(r.queue).toBe(names.work(q));
        expect(r.elapsedMs).toBe(ms);
        expect(r.path.length - 1).toBe(planDelay(ms)!.levels.length);
      }
    }
  });

  it('gives each delay queue a single TTL, so FIFO order is expiry order', () => {
    const ttls = levelTopology(names, 'default', opts)
      .filter((d): d is Extract<Declaration, { kind: 'queue' }> => d.kind === 'queue' && d.name.includes(':delay:'))
      .map((d) => d.args['x-message-ttl']);
    expect(ttls).toEqual(Array.from({ length: DELAY_LEVELS }, (_, k) => 2 ** k));
  });

  it('passes through a level whose bit is clear without waiting there', () => {
    const r = deliver('default', 2 ** 20 + 1);
    expect(r.path).toEqual([names.level('default', 20), names.level('default', 0), names.work('default')]);
  });

  it('declares classic work queues with x-max-priority 9 and quorum ones without', () => {
    const classic = queueTopology(names, 'q', { queueType: 'classic', delayQueueType: 'classic' })[0]!;
    const quorum = queueTopology(names, 'q', { queueType: 'quorum', delayQueueType: 'classic' })[0]!;
    expect(classic).toMatchObject({ kind: 'queue', args: { 'x-queue-type': 'classic', 'x-max-priority': 9 } });
    expect(quorum.kind === 'queue' && 'x-max-priority' in quorum.args).toBe(false);
  });

  it('uses at-least-once dead-lettering for quorum delay queues', () => {
    const level = levelTopology(names, 'q', { queueType: 'quorum', delayQueueType: 'quorum' }).find(
      (d) => d.kind === 'queue' && d.name === names.level('q', 3),
    );
    expect(level).toMatchObject({ args: { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' } });
  });

  it('refuses queue names too long for RabbitMQ', () => {
    expect(() => queueTopology(names, 'x'.repeat(240), opts)).toThrow(RangeError);
  });

  it('never lets a work queue name collide with an internal one', () => {
    const internal = new Set([...names.exchanges(), ...names.queuesOf('a').slice(1)]);
    for (const q of ['a', 'dead', 'delay', 'a:dead', ':dead:a']) expect(internal.has(names.work(q))).toBe(false);
  });
});
