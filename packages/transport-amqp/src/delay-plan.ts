/**
 * Hop arithmetic of broker-held delays.
 *
 * RabbitMQ 3.10 has no delayed delivery without a plugin, and a message TTL only expires at the head of
 * its queue, so per-message TTLs in one queue would let a long delay hold back a short one. Instead each
 * work queue has `DELAY_LEVELS` delay queues, level `k` with the single queue TTL `2^k` ms. A delay is
 * written in binary; the message visits exactly the levels of its set bits, highest first, and waits
 * `2^k` ms in each, so the waits add up to the delay to the millisecond. Which level comes next is
 * decided by topic routing on the (immutable) routing key, which spells the bits out word by word:
 * `<queue>.<b31>.<b30>….<b0>`. Level exchange `k` sends a key whose bit `k` is 1 to the queue's level
 * queue `k`, and any key whose bit `k` is 0 on to level exchange `k-1`; level queue `k` dead-letters
 * to level exchange `k-1`; below level 0 the "out" exchange routes the key to the work queue.
 *
 * At most `DELAY_LEVELS` queue hops (the popcount of the delay), each queue with one TTL, so expiry
 * order is FIFO order and a short delay never waits behind a long one.
 */

/** Number of delay levels (queues per work queue): 2^0 … 2^31 ms. */
export const DELAY_LEVELS = 32;

/** The longest delay one pass through the levels can hold: 2^32 − 1 ms ≈ 49.7 days. */
export const MAX_DELAY_CHUNK_MS = 2 ** DELAY_LEVELS - 1;

export interface DelayPlan {
  /** Milliseconds held by this pass through the levels (1 … MAX_DELAY_CHUNK_MS). */
  readonly chunkMs: number;
  /** What is left after this pass: carried in a header and delayed again on arrival (0 almost always). */
  readonly restMs: number;
  /** The levels visited, highest first (the set bits of `chunkMs`). */
  readonly levels: readonly number[];
  /** The level whose exchange the message is published to (the highest set bit). */
  readonly entryLevel: number;
  /** The bit words of the routing key, b31 first: `['0', …, '1', …]`. */
  readonly bits: readonly string[];
}

/**
 * Plan a delay of `delayMs` (rounded up to a whole millisecond, so never early). Returns undefined
 * when there is nothing to wait for.
 */
export function planDelay(delayMs: number): DelayPlan | undefined {
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    throw new RangeError(`delayMs must be a finite number >= 0, got ${String(delayMs)}`);
  }
  const total = Math.ceil(delayMs);
  if (total <= 0) return undefined;
  const chunkMs = Math.min(total, MAX_DELAY_CHUNK_MS);
  const restMs = total - chunkMs;
  const bits: string[] = [];
  const levels: number[] = [];
  for (let k = DELAY_LEVELS - 1; k >= 0; k--) {
    // Math.floor division, not bitwise ops: bitwise ops truncate to 32-bit signed integers.
    const set = Math.floor(chunkMs / 2 ** k) % 2 === 1;
    bits.push(set ? '1' : '0');
    if (set) levels.push(k);
  }
  return { chunkMs, restMs, levels, entryLevel: levels[0]!, bits };
}

/** Sum of the level TTLs a plan visits (equals `chunkMs`; exported for tests). */
export function plannedWaitMs(plan: DelayPlan): number {
  return plan.levels.reduce((sum, k) => sum + 2 ** k, 0);
}

/** The routing key of a delayed message for the queue word `queueWord`. */
export function delayRoutingKey(queueWord: string, plan: DelayPlan): string {
  return `${queueWord}.${plan.bits.join('.')}`;
}

/** Binding of level exchange `k` to the queue's level queue `k`: bit `k` set, for this queue only. */
export function levelBindingKey(queueWord: string, k: number): string {
  return [queueWord, ...wordsFor(k, '1')].join('.');
}

/** Binding of level exchange `k` to the next exchange down: bit `k` clear, any queue. */
export function passBindingKey(k: number): string {
  return ['*', ...wordsFor(k, '0')].join('.');
}

/** Binding of the out exchange to the work queue: every key of this queue. */
export function outBindingKey(queueWord: string): string {
  return [queueWord, ...Array<string>(DELAY_LEVELS).fill('*')].join('.');
}

/** The 32 bit words with `word` at bit `k` and `*` elsewhere (b31 first). */
function wordsFor(k: number, word: '0' | '1'): string[] {
  const out = Array<string>(DELAY_LEVELS).fill('*');
  out[DELAY_LEVELS - 1 - k] = word;
  return out;
}

/**
 * The queue's word in routing keys: the name with the topic separator `.` and the wildcards `*`, `#`
 * escaped, so any queue name is one literal word.
 */
export function queueWord(queue: string): string {
  return encodeURIComponent(queue).replace(/\./g, '%2E').replace(/\*/g, '%2A');
}

/** Whether a topic binding key (with `*` and `#` wildcards) matches a routing key; used by tests. */
export function topicMatches(bindingKey: string, routingKey: string): boolean {
  const b = bindingKey.split('.');
  const r = routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === b.length) return j === r.length;
    const w = b[i]!;
    if (w === '#') {
      for (let n = j; n <= r.length; n++) if (match(i + 1, n)) return true;
      return false;
    }
    if (j === r.length) return false;
    return (w === '*' || w === r[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}
