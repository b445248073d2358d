import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription, SubscriptionOptions } from '@nats-io/transport-node';
import { Puller } from '../src/puller.js';
import { adminConnection, deleteStreams, uniquePrefix } from './helpers.js';

/** `nc` with its `subscribe` and `unsubscribe` calls counted (the real connection does the work). */
function counting(nc: NatsConnection): { nc: NatsConnection; subscribes: () => number; unsubscribes: () => number } {
  let subscribes = 0;
  let unsubscribes = 0;
  const wrapped = new Proxy(nc, {
    get(target, key) {
      if (key === 'subscribe') {
        return (subject: string, opts?: SubscriptionOptions): Subscription => {
          subscribes++;
          const sub = target.subscribe(subject, opts);
          const unsubscribe = sub.unsubscribe.bind(sub);
          sub.unsubscribe = (max?: number) => {
            unsubscribes++;
            unsubscribe(max);
          };
          return sub;
        };
      }
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { nc: wrapped, subscribes: () => subscribes, unsubscribes: () => unsubscribes };
}

/**
 * A puller on `nc` whose handler records each message's text and acks it; `pull` asks for `batch` and
 * resolves when that request ends, `ends` holds each end's failure code (undefined: a normal end).
 */
function ackingPuller(nc: NatsConnection, stream: string, expiresMs: number, heartbeatMs: number) {
  const got: string[] = [];
  const ends: (number | undefined)[] = [];
  let ended: (() => void) | undefined;
  const puller = new Puller({
    nc,
    stream,
    consumer: 'c',
    expiresMs,
    heartbeatMs,
    defer: (write) => write(),
    onMessage: (msg: Msg) => {
      got.push(msg.string());
      msg.respond('+ACK');
    },
    onEnded: (_id, failure) => {
      ends.push(failure?.code);
      ended?.();
    },
  });
  const pull = (batch: number, noWait = false): Promise<void> => {
    const done = new Promise<void>((resolve) => (ended = resolve));
    puller.request(batch, noWait);
    return done;
  };
  return { puller, got, ends, pull };
}

describe('puller', () => {
  const prefix = uniquePrefix('puller');
  const stream = `${prefix}_s`;
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await adminConnection();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.q`], retention: RetentionPolicy.Workqueue, storage: StorageType.Memory });
    await jsm.consumers.add(stream, { durable_name: 'c', ack_policy: AckPolicy.Explicit });
    const js = jetstream(nc);
    for (let i = 0; i < 10; i++) await js.publish(`${prefix}.q`, String(i));
  });
  afterAll(async () => {
    await nc.close();
    await deleteStreams(prefix);
  });

  it('hands the subscription of a request the server finished to the next request, and drops a cancelled one', async () => {
    const counted = counting(nc);
    const { puller, got, ends, pull } = ackingPuller(counted.nc, stream, 30_000, 5_000);
    try {
      await pull(3); // every message delivered: the server is done with it
      await pull(3);
      await pull(10, true); // four left, then "no messages" (404) ends it
      expect(got).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      expect(ends).toEqual([undefined, undefined, undefined]);
      expect(puller.outstanding).toBe(0);
      expect(counted.subscribes()).toBe(1);
      expect(counted.unsubscribes()).toBe(0);

      // A long poll on an empty consumer, cancelled: the server may still hold it, so its subscription goes.
      puller.request(5);
      expect(puller.outstanding).toBe(5);
      puller.reset();
      expect(puller.outstanding).toBe(0);
      expect(counted.unsubscribes()).toBe(1);
      // The next request subscribes a new reply subject, and the consumer is still served on it.
      await jetstream(nc).publish(`${prefix}.q`, '10');
      await pull(1);
      expect(got.at(-1)).toBe('10');
      expect(counted.subscribes()).toBe(2);
    } finally {
      await puller.close();
    }
  });

  it('reuses the subscription of a long poll the server expired (408), and is served on it afterwards', async () => {
    const counted = counting(nc);
    const { puller, got, ends, pull } = ackingPuller(counted.nc, stream, 1_000, 500);
    try {
      await pull(5); // the consumer is empty: the server answers 408 after a second
      expect(ends).toEqual([undefined]); // an expiry is a normal end, not a failure
      expect(puller.outstanding).toBe(0);
      const served = pull(1);
      await jetstream(nc).publish(`${prefix}.q`, '11');
      await served;
      expect(got).toEqual(['11']);
      expect(counted.subscribes()).toBe(1);
      expect(counted.unsubscribes()).toBe(0);
    } finally {
      await puller.close();
    }
  });
});
