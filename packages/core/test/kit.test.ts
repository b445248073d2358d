import { describe, expect, it } from 'vitest';
import type { Headers, NackOptions } from '../src/index.js';
import { createFakeClock } from '../src/testing/index.js';
import { ConsumerKit, SETTLED, type Incoming, type PullAdapter, type PushAdapter, type Sink } from '../src/transport/index.js';

/** A message of the fake adapters: what the kit needs, plus a name to follow it by. */
class Msg implements Incoming {
  readonly body = new Uint8Array(0);
  readonly headers: Headers = {};
  readonly deliveries = 1;
  constructor(readonly id: string) {}
}

/** Records every settle and give-back the kit asks of an adapter. */
class Ledger {
  readonly acked: string[] = [];
  readonly nacked: string[] = [];
  readonly releasedUncounted: string[] = [];
  readonly releasedCounted: string[] = [];
  readonly extended: string[] = [];
  ack(m: Msg): Promise<void> {
    this.acked.push(m.id);
    return SETTLED;
  }
  nack(m: Msg, _opts: NackOptions): Promise<void> {
    this.nacked.push(m.id);
    return SETTLED;
  }
  extend(m: Msg): Promise<void> {
    this.extended.push(m.id);
    return SETTLED;
  }
  release(ms: readonly Msg[], counted: boolean): Promise<void> {
    (counted ? this.releasedCounted : this.releasedUncounted).push(...ms.map((m) => m.id));
    return SETTLED;
  }
}

/** A push adapter that cheats: it offers `extra` messages more than the credit, at start and at every credit. */
class GreedyPush extends Ledger implements PushAdapter<Msg> {
  private sink: Sink<Msg> | undefined;
  private n = 0;
  constructor(private readonly extra: number) {
    super();
  }
  start(sink: Sink<Msg>): void {
    this.sink = sink;
    this.offer();
  }
  credit(): void {
    this.offer();
  }
  sinkOf(): Sink<Msg> {
    return this.sink!;
  }
  private offer(): void {
    const sink = this.sink!;
    for (let i = sink.credit + this.extra; i > 0; i--) sink.push(new Msg(`m${this.n++}`));
  }
}

/** A pull adapter that cheats: every claim returns `extra` messages more than asked, up to `total`. */
class GreedyPull extends Ledger implements PullAdapter<Msg> {
  private n = 0;
  readonly asked: number[] = [];
  constructor(
    private readonly extra: number,
    private readonly total: number,
  ) {
    super();
  }
  claim(max: number, signal: AbortSignal): Promise<readonly Msg[]> {
    this.asked.push(max);
    const out: Msg[] = [];
    for (let i = 0; i < max + this.extra && this.n < this.total; i++) out.push(new Msg(`m${this.n++}`));
    if (out.length > 0) return Promise.resolve(out);
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve([]), { once: true }));
  }
}

describe('the transport kit enforces the prefetch bound whatever an adapter offers', () => {
  it('a push adapter offering credit + 10 at start and at every settle never gets more than the bound held', async () => {
    const kit = new ConsumerKit();
    const adapter = new GreedyPush(10);
    const c = kit.consume('q', adapter, { prefetch: 5 });
    let maxHeld = c.held;
    expect(c.held).toBe(5);
    expect(adapter.releasedUncounted).toHaveLength(10); // the overflow went straight back, uncounted
    const taken = [];
    for (let d = c.takeSync(); d !== undefined; d = c.takeSync()) taken.push(d);
    expect(taken).toHaveLength(5);
    for (let round = 0; round < 20; round++) {
      const d = taken.shift()!;
      await d.ack();
      maxHeld = Math.max(maxHeld, c.held, kit.heldCount);
      const next = c.takeSync();
      if (next !== undefined) taken.push(next);
    }
    expect(maxHeld).toBe(5);
    expect(adapter.acked).toHaveLength(20);
    // Each settle freed one slot; the adapter offered 11 for it and 10 went back.
    expect(adapter.releasedUncounted).toHaveLength(10 + 20 * 10);
    await kit.close();
    // What the application still held goes back counted; nothing was buffered.
    expect(adapter.releasedCounted).toHaveLength(5);
  });

  it('a pull adapter answering a claim with 10 more than asked never gets more than the bound held', async () => {
    const kit = new ConsumerKit();
    const adapter = new GreedyPull(10, 100);
    const c = kit.consume('q', adapter, { prefetch: 5 });
    for (let i = 0; i < 5 && c.held < 5; i++) await Promise.resolve();
    expect(c.held).toBe(5);
    expect(adapter.releasedUncounted).toHaveLength(10);
    const d = c.takeSync()!;
    await d.ack();
    for (let i = 0; i < 5 && c.held < 5; i++) await Promise.resolve();
    expect(c.held).toBe(5);
    expect(adapter.asked).toEqual([5, 1]); // asked only for its credit
    expect(adapter.releasedUncounted).toHaveLength(20);
    // Stopping gives back what is buffered, uncounted, and resolves with how many.
    expect(await c.close()).toBe(5); // four left from the first claim, one from the second
    expect(adapter.releasedUncounted).toHaveLength(25);
    await kit.close();
  });
});

describe('the transport kit', () => {
  it('settles each delivery once, refuses a settle after a give-back, and keeps a delivery held when the adapter refuses a result write', async () => {
    const kit = new ConsumerKit();
    const adapter = Object.assign(new GreedyPush(0), {
      ackWithResult: (m: Msg, write: { kind: string }) => {
        if (write.kind !== 'ok') throw new TypeError('unknown write');
        adapter.acked.push(`${m.id}+result`);
        return SETTLED;
      },
    });
    const c = kit.consume('q', adapter, { prefetch: 3 });
    const [a, b, x] = [c.takeSync()!, c.takeSync()!, c.takeSync()!];
    await a.ack();
    await expect(a.ack()).rejects.toMatchObject({ code: 'ERR_ALREADY_SETTLED' });
    await expect(a.nack({ requeue: true })).rejects.toMatchObject({ code: 'ERR_ALREADY_SETTLED' });
    await expect(b.nack({ requeue: true, delayMs: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(b.ackWithResult({ kind: 'other', keys: [], args: [] })).rejects.toBeInstanceOf(TypeError);
    await b.ackWithResult({ kind: 'ok', keys: [], args: [] }); // still held after the refusal
    expect(adapter.acked).toEqual(['m0', 'm1+result']);
    await c.close();
    await kit.close();
    expect(adapter.releasedCounted).toEqual(['m2']);
    await expect(x.ack()).rejects.toMatchObject({ code: 'ERR_STALE_DELIVERY' });
  });

  it('renews the lease of every held message every third of the visibility timeout, and stops when none is held', async () => {
    const clock = createFakeClock();
    const kit = new ConsumerKit({ clock, visibilityTimeoutMs: 3000 });
    const adapter = new GreedyPush(0);
    const c = kit.consume('q', adapter, { prefetch: 2 });
    const first = c.takeSync()!; // one handed out, one still buffered: both are held
    await clock.advance(1000);
    expect(adapter.extended.sort()).toEqual(['m0', 'm1']);
    await first.ack(); // m2 comes in for the freed slot
    await clock.advance(1000);
    expect(adapter.extended.slice(2).sort()).toEqual(['m1', 'm2']);
    await c.close();
    await kit.close();
    const after = adapter.extended.length;
    await clock.advance(10_000);
    expect(adapter.extended).toHaveLength(after);
    expect(clock.pending).toBe(0);
  });

  it('drops what the server took back (a closed channel): buffered and handed out, slots freed, later settles refused', async () => {
    const kit = new ConsumerKit();
    const adapter = new GreedyPush(0);
    const c = kit.consume('q', adapter, { prefetch: 4 });
    const handed = c.takeSync()!; // m0 handed out; m1..m3 buffered
    expect(c.held).toBe(4);
    // The "channel" of m0, m1 and m2 closed: the server requeued them; the adapter tells the kit.
    const dropped = adapter.sinkOf().drop((m) => ['m0', 'm1', 'm2'].includes(m.id));
    expect(dropped).toBe(3);
    // Freed slots were refilled by the adapter (credit); nothing was released or settled for them.
    expect(c.held).toBe(4);
    expect([c.takeSync()?.id, c.takeSync()?.id, c.takeSync()?.id, c.takeSync()?.id]).toEqual(['m3', 'm4', 'm5', 'm6']);
    await expect(handed.ack()).rejects.toMatchObject({ code: 'ERR_STALE_DELIVERY' });
    expect(adapter.acked).toEqual([]);
    expect(adapter.releasedUncounted).toEqual([]);
    await c.close();
    await kit.close();
  });

  it('hands a waiting next() the next message without buffering it, and ends the iteration on close', async () => {
    const kit = new ConsumerKit();
    const adapter = new GreedyPull(0, 1);
    const c = kit.consume('q', adapter, { prefetch: 2 });
    const first = await c.next();
    expect(first.value?.id).toBe('m0');
    const waiting = c.next();
    await c.close();
    expect((await waiting).done).toBe(true);
    await kit.close();
    expect(adapter.releasedCounted).toEqual(['m0']);
  });
});
