import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { Outbox } from '../src/outbox.js';
import { adminConnection, uniquePrefix } from './helpers.js';

/** Subscribe to `subject.>` and resolve with the first `n` messages as `subject-suffix:text`. */
async function collect(nc: NatsConnection, subject: string, n: number): Promise<() => Promise<string[]>> {
  const got: string[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  nc.subscribe(`${subject}.>`, {
    callback: (_err, m: Msg) => {
      got.push(`${m.subject.slice(subject.length + 1)}:${m.string()}`);
      if (got.length === n) done();
    },
  });
  await nc.flush();
  return async () => {
    await all;
    return got;
  };
}

describe('outbox', () => {
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await adminConnection();
  });
  afterAll(async () => {
    await nc.close();
  });

  it('writes a turn of replies and other writes in the order they were made', async () => {
    const subject = uniquePrefix('outbox');
    const received = await collect(nc, subject, 5);
    const outbox = new Outbox();
    outbox.reply(nc, Buffer.from(`${subject}.a`), '+ACK');
    outbox.reply(nc, Buffer.from(`${subject}.b`), '-NAK {"delay":1000000}');
    outbox.push(() => nc.publish(`${subject}.c`, 'pull'));
    outbox.reply(nc, Buffer.from(`${subject}.d`), '+WPI');
    outbox.reply(nc, Buffer.from(`${subject}.e`), '+TERM');
    expect(await received()).toEqual(['a:+ACK', 'b:-NAK {"delay":1000000}', 'c:pull', 'd:+WPI', 'e:+TERM']);
  });

  it('publishes replies one by one where the client takes no raw protocol text', async () => {
    const subject = uniquePrefix('outbox');
    const received = await collect(nc, subject, 3);
    // Only the public API of the connection: no `protocol` to write to.
    const plain = { isClosed: () => nc.isClosed(), publish: nc.publish.bind(nc) } as unknown as NatsConnection;
    const outbox = new Outbox();
    outbox.reply(plain, Buffer.from(`${subject}.a`), '+ACK');
    outbox.push(() => nc.publish(`${subject}.b`, 'pull'));
    outbox.reply(plain, Buffer.from(`${subject}.c`), '-NAK');
    outbox.flush();
    expect(await received()).toEqual(['a:+ACK', 'b:pull', 'c:-NAK']);
  });

  it('drops replies on a closed connection instead of throwing', async () => {
    const closed = await adminConnection();
    await closed.close();
    const outbox = new Outbox();
    outbox.reply(closed, Buffer.from('anything'), '+ACK');
    expect(() => outbox.flush()).not.toThrow();
  });
});
