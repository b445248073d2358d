import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { Limiter, type BenchTask, type ConsumerHooks, type Driver } from './driver.js';
import type { RowSpec } from './record.js';

/** RabbitMQ queue types the raw floor (and celeriac's AMQP rows) can use. */
export type AmqpQueueType = 'quorum' | 'classic';

/**
 * The RabbitMQ floor with plain amqplib: a durable queue of the same type celeriac uses, persistent
 * messages on a confirm channel with many unconfirmed publishes in flight, and a consumer with manual
 * acks, `basic.qos` of concurrency × 4 (celeriac's default prefetch) and at most `concurrency` handlers.
 */
export function createRawAmqpDriver(spec: RowSpec, queueType: AmqpQueueType): Driver {
  if (spec.url === undefined) throw new TypeError('a raw AMQP row needs an AMQP URL');
  const url = spec.url;
  const queue = `${spec.prefix}.q`;
  const prefetch = Math.max(100, spec.concurrency * 4);
  let model: ChannelModel | undefined;
  let pub: ConfirmChannel | undefined;
  let sub: Channel | undefined;
  let closing: Promise<void> | undefined;
  let failure: ((err: unknown) => void) | undefined;

  const publishOne = (ch: ConfirmChannel, t: BenchTask): Promise<void> =>
    new Promise((resolve, reject) => {
      ch.sendToQueue(queue, Buffer.from(JSON.stringify(t)), { persistent: true }, (err: unknown) => {
        if (err === null || err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error(`publish nacked: ${String(err)}`));
      });
    });

  return {
    options: {
      queueType,
      prefetch,
      confirms: true,
      ...(spec.scenario === 'latency'
        ? {}
        : { enqueue: spec.enqueue === 'bulk' ? `publish×${spec.bulkSize}, then confirms` : `publish, ${spec.inFlight} unconfirmed` }),
    },
    supportsRetry: false,
    async open() {
      const m = await connect(url);
      model = m;
      m.on('error', (err: Error) => failure?.(err));
      pub = await m.createConfirmChannel();
      pub.on('error', (err: Error) => failure?.(err));
      await pub.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': queueType } });
    },
    enqueue(t) {
      if (pub === undefined) return Promise.reject(new Error('not open'));
      return publishOne(pub, t);
    },
    async enqueueBulk(ts) {
      const ch = pub;
      if (ch === undefined) throw new Error('not open');
      await Promise.all(ts.map((t) => publishOne(ch, t)));
    },
    async startConsumer(concurrency, hooks: ConsumerHooks) {
      if (model === undefined) throw new Error('not open');
      failure = hooks.onError;
      const ch = await model.createChannel();
      sub = ch;
      ch.on('error', (err: Error) => hooks.onError(err));
      await ch.prefetch(prefetch);
      const limiter = new Limiter(concurrency);
      await ch.consume(
        queue,
        (msg: ConsumeMessage | null) => {
          if (msg === null) return; // cancelled by the server
          limiter.run(async () => {
            try {
              await hooks.handler(JSON.parse(msg.content.toString()) as BenchTask, 0);
              ch.ack(msg);
              hooks.onDone();
            } catch (err) {
              hooks.onError(err);
            }
          });
        },
        { noAck: false },
      );
    },
    close() {
      closing ??= (async () => {
        failure = undefined;
        await sub?.close().catch(() => undefined);
        if (pub !== undefined) await pub.deleteQueue(queue).catch(() => undefined);
        await model?.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
