import { describe, expect, it } from 'vitest';
import { AckBatcher, type AckEntry, type AckScheduler } from '../src/ack-batcher.js';

/** A batcher over delivery tags 1…n, with the event loop run by hand. */
function setup(n: number) {
  const sent: string[] = [];
  const soon: (() => void)[] = [];
  const timers = new Map<number, { fn: () => void; ms: number }>();
  let nextTimer = 0;
  const scheduler: AckScheduler = {
    soon: (fn) => void soon.push(fn),
    later: (fn, ms) => {
      const id = nextTimer++;
      timers.set(id, { fn, ms });
      return () => void timers.delete(id);
    },
  };
  const b = new AckBatcher<number>((tag, multiple) => void sent.push(`${multiple ? 'ack≤' : 'ack '}${tag}`), scheduler, 5);
  const e: AckEntry<number>[] = [];
  for (let tag = 1; tag <= n; tag++) e.push(b.add(tag));
  const entry = (tag: number) => e[tag - 1]!;
  return {
    b,
    sent,
    ack: (...tags: number[]) => tags.forEach((t) => b.ack(entry(t))),
    nack: (...tags: number[]) => tags.forEach((t) => b.settled(entry(t))),
    /** End the current turn of the event loop: run what was deferred with `soon`. */
    turn() {
      for (const fn of soon.splice(0)) fn();
    },
    /** Fire the pending timers. */
    timers() {
      const due = [...timers.values()];
      timers.clear();
      for (const t of due) t.fn();
    },
    pendingTimers: () => timers.size,
    pendingSoon: () => soon.length,
  };
}

describe('AckBatcher', () => {
  it('sends one multiple ack for a run of acks, at the end of the turn', () => {
    const t = setup(5);
    t.ack(1, 2, 3);
    expect(t.sent).toEqual([]);
    expect(t.pendingSoon()).toBe(1); // one flush per turn, however many acks
    t.turn();
    expect(t.sent).toEqual(['ack≤3']);
    t.ack(5, 4);
    t.turn();
    expect(t.sent).toEqual(['ack≤3', 'ack≤5']);
    expect(t.b.size).toBe(0);
    expect(t.pendingTimers()).toBe(0);
  });

  it('sends a lone ack without the multiple flag', () => {
    const t = setup(3);
    t.ack(1);
    t.turn();
    expect(t.sent).toEqual(['ack 1']);
  });

  it('never covers an open delivery: acks behind it wait one flush, then go out one by one', () => {
    const t = setup(6);
    t.ack(1, 2, 4, 5); // 3 still running
    t.turn();
    expect(t.sent).toEqual(['ack≤2']);
    expect(t.pendingTimers()).toBe(1);
    t.ack(6);
    t.turn(); // the next flush: 4 and 5 waited one already; 6 waits its first
    expect(t.sent).toEqual(['ack≤2', 'ack 4', 'ack 5']);
    t.timers(); // no other flush came
    expect(t.sent).toEqual(['ack≤2', 'ack 4', 'ack 5', 'ack 6']);
    expect(t.pendingTimers()).toBe(0);
    t.ack(3);
    t.turn();
    expect(t.sent).toEqual(['ack≤2', 'ack 4', 'ack 5', 'ack 6', 'ack 3']);
    expect(t.b.size).toBe(0);
  });

  it('covers acks behind an open delivery that settles before they waited a flush', () => {
    const t = setup(4);
    t.ack(2, 4);
    t.turn();
    expect(t.sent).toEqual([]); // 1 still running
    t.ack(1, 3);
    t.turn();
    expect(t.sent).toEqual(['ack≤4']);
    expect(t.pendingTimers()).toBe(0);
  });

  it('sends stragglers after a few ms when no other flush comes', () => {
    const t = setup(3);
    t.ack(2, 3);
    t.turn();
    expect(t.sent).toEqual([]);
    t.timers();
    expect(t.sent).toEqual(['ack 2', 'ack 3']);
    t.ack(1);
    t.turn();
    expect(t.sent).toEqual(['ack 2', 'ack 3', 'ack 1']);
  });

  it('skips over nacked deliveries, ending the multiple ack on the last acked tag', () => {
    const t = setup(6);
    t.nack(2); // nacked on its own, already settled at the server
    t.ack(1, 3);
    t.nack(4);
    t.turn();
    expect(t.sent).toEqual(['ack≤3']);
    t.nack(5);
    t.ack(6);
    t.turn();
    expect(t.sent).toEqual(['ack≤3', 'ack 6']);
    expect(t.b.size).toBe(0);
  });

  it('drops a settled front at once, so a channel that only nacks does not pile up', () => {
    const t = setup(3);
    t.nack(1, 2);
    expect(t.b.size).toBe(1);
    expect(t.pendingSoon()).toBe(0);
    t.nack(3);
    expect(t.b.size).toBe(0);
    expect(t.sent).toEqual([]);
  });

  it('keeps an open delivery being forwarded (or about to be nacked) out of every multiple ack', () => {
    const t = setup(4);
    t.ack(1, 3, 4); // 2 is being republished
    t.turn();
    expect(t.sent).toEqual(['ack 1']);
    t.nack(2); // the republish failed: the original goes back
    t.turn();
    expect(t.sent).toEqual(['ack 1', 'ack≤4']);
    expect(t.pendingTimers()).toBe(0);
  });

  it('does not pile up settled deliveries behind one held for long', () => {
    const t = setup(1);
    const b = t.b;
    for (let tag = 2; tag <= 20_000; tag++) {
      const e = b.add(tag);
      if (tag % 3 === 0) b.settled(e);
      else b.ack(e);
      if (tag % 50 === 0) {
        t.turn();
        t.timers();
      }
    }
    t.turn();
    t.timers();
    expect(t.sent).toHaveLength(Math.ceil((19_999 * 2) / 3)); // every ack went out on its own, behind tag 1
    expect(t.b.size).toBeLessThan(2100);
    t.ack(1);
    t.turn();
    expect(t.sent.at(-1)).toBe('ack 1');
    expect(t.b.size).toBe(0);
  });

  it('ignores a second settle of the same delivery', () => {
    const t = setup(2);
    t.ack(1);
    t.ack(1);
    t.nack(1);
    t.ack(2);
    t.turn();
    expect(t.sent).toEqual(['ack≤2']);
  });

  it('flushAll sends every pending ack before the channel closes, open deliveries or not', () => {
    const t = setup(7);
    t.ack(1, 2, 4);
    t.turn();
    t.ack(5, 7); // 3 and 6 are open; 4 waited a flush, 5 and 7 did not
    t.b.flushAll();
    expect(t.sent).toEqual(['ack≤2', 'ack 4', 'ack 5', 'ack 7']);
    expect(t.b.size).toBe(0);
    expect(t.pendingTimers()).toBe(0);
    t.turn(); // the flush scheduled before has nothing left to do
    expect(t.sent).toHaveLength(4);
  });

  it('clear forgets everything when the channel is gone (RabbitMQ requeues what it held)', () => {
    const t = setup(3);
    t.ack(2);
    t.turn();
    expect(t.pendingTimers()).toBe(1);
    t.ack(3);
    t.b.clear();
    t.turn();
    t.timers();
    expect(t.sent).toEqual([]);
    expect(t.b.size).toBe(0);
  });

  it('acks each tag exactly once and never covers an open tag, over random interleavings', () => {
    for (let round = 0; round < 200; round++) {
      let seed = round + 1;
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const n = 1 + Math.floor(rand() * 60);
      const sent: { tag: number; multiple: boolean }[] = [];
      const soon: (() => void)[] = [];
      let timer: (() => void) | undefined;
      const b = new AckBatcher<number>((tag, multiple) => void sent.push({ tag, multiple }), {
        soon: (fn) => void soon.push(fn),
        later: (fn) => {
          timer = fn;
          return () => (timer = undefined);
        },
      });
      // What the server thinks: unacked tags; an ack of a tag it does not hold is a channel error (406).
      const unacked = new Set<number>();
      const want = new Map<number, 'ack' | 'nack'>();
      const entries: AckEntry<number>[] = [];
      const open = new Set<number>();
      const server = () => {
        for (const { tag, multiple } of sent.splice(0)) {
          expect(unacked.has(tag), `tag ${tag} acked twice`).toBe(true);
          for (const t of multiple ? [...unacked].filter((u) => u <= tag) : [tag]) {
            expect(open.has(t), `tag ${t} covered while open`).toBe(false);
            expect(want.get(t)).toBe('ack');
            unacked.delete(t);
          }
        }
      };
      for (let tag = 1; tag <= n; tag++) {
        entries.push(b.add(tag));
        unacked.add(tag);
        open.add(tag);
      }
      const order = [...open].sort(() => rand() - 0.5);
      for (const tag of order) {
        open.delete(tag);
        if (rand() < 0.2) {
          want.set(tag, 'nack');
          unacked.delete(tag); // nacked on its own, right away
          b.settled(entries[tag - 1]!);
        } else {
          want.set(tag, 'ack');
          b.ack(entries[tag - 1]!);
        }
        const r = rand();
        if (r < 0.3) soon.splice(0).forEach((fn) => fn());
        else if (r < 0.4) timer?.();
        server();
      }
      if (rand() < 0.5) b.flushAll();
      else {
        soon.splice(0).forEach((fn) => fn());
        soon.splice(0).forEach((fn) => fn());
        timer?.();
      }
      server();
      expect(unacked.size, `round ${round}: ${[...unacked].join(',')} never acked`).toBe(0);
      expect(b.size).toBe(0);
    }
  });
});
