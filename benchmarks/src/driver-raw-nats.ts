import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Limiter, PayloadRefused, type BenchTask, type ConsumerHooks, type Driver } from './driver.js';
import type { RowSpec } from './record.js';

/** Bytes one pull may bring at most, when the row's payloads are big. */
const PULL_BYTES = 32 * 1024 * 1024;

/** `nats://user:pass@host:port` → the client's connection options. */
export function natsConnectOptions(url: string): { servers: string; user?: string; pass?: string } {
  const u = new URL(url);
  const servers = `${u.hostname === '' ? '127.0.0.1' : u.hostname}:${u.port === '' ? '4222' : u.port}`;
  return {
    servers,
    ...(u.username === '' ? {} : { user: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { pass: decodeURIComponent(u.password) }),
  };
}

/**
 * The JetStream floor with the plain v3 client: a file-backed work-queue stream, async publishes with
 * many acks pending, and a durable pull consumer (`consume`, explicit acks, max ack pending and pull
 * batch of concurrency × 4) running at most `concurrency` handlers.
 */
export function createRawNatsDriver(spec: RowSpec): Driver {
  if (spec.url === undefined) throw new TypeError('a raw NATS row needs a NATS URL');
  const url = spec.url;
  const stream = spec.prefix;
  const subject = `${spec.prefix}.q`;
  const durable = 'worker';
  const pull = Math.max(100, spec.concurrency * 4);
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let jsm: JetStreamManager | undefined;
  let messages: ConsumerMessages | undefined;
  let closing: Promise<void> | undefined;
  let created = false;
  const encode = (t: BenchTask): string => {
    const body = JSON.stringify(t);
    const limit = nc?.info?.max_payload;
    if (limit !== undefined && Buffer.byteLength(body) > limit) throw new PayloadRefused(Buffer.byteLength(body), limit);
    return body;
  };

  return {
    options: {
      storage: 'file',
      retention: 'workqueue',
      maxAckPending: pull,
      ...((spec.payloadBytes + 256) * pull > PULL_BYTES ? { pullMaxBytes: PULL_BYTES } : { pullMaxMessages: pull }),
      ...(spec.scenario === 'latency'
        ? {}
        : { enqueue: spec.enqueue === 'bulk' ? `publish×${spec.bulkSize}, then acks` : `publish, ${spec.inFlight} acks pending` }),
    },
    supportsRetry: false,
    async open() {
      nc = await connect(natsConnectOptions(url));
      jsm = await jetstreamManager(nc);
      js = jetstream(nc);
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
      });
      created = true;
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: pull,
      });
    },
    async enqueue(t) {
      if (js === undefined) throw new Error('not open');
      await js.publish(subject, encode(t));
    },
    async enqueueBulk(ts) {
      const client = js;
      if (client === undefined) throw new Error('not open');
      await Promise.all(ts.map((t) => client.publish(subject, encode(t))));
    },
    async startConsumer(concurrency, hooks: ConsumerHooks) {
      if (js === undefined) throw new Error('not open');
      const consumer = await js.consumers.get(stream, durable);
      const limiter = new Limiter(concurrency);
      // The callback form: the async iterator costs about a third of the floor's rate on this client.
      // Big payloads: bound each pull by bytes too. 200 × 512 KB in one pull overruns the client's
      // pending limit; the dropped messages come back only after AckWait (30 s).
      const bound = (spec.payloadBytes + 256) * pull > PULL_BYTES ? { max_bytes: PULL_BYTES } : { max_messages: pull };
      messages = await consumer.consume({
        ...bound,
        callback: (m) => {
          limiter.run(async () => {
            try {
              await hooks.handler(m.json<BenchTask>(), 0);
              m.ack();
              hooks.onDone();
            } catch (err) {
              hooks.onError(err);
            }
          });
        },
      });
      void messages.closed().then((err) => {
        if (err instanceof Error && closing === undefined) hooks.onError(err);
      });
    },
    close() {
      closing ??= (async () => {
        messages?.stop();
        if (created && jsm !== undefined) await jsm.streams.delete(stream).catch(() => undefined);
        await nc?.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
