import { DELAY_LEVELS, levelBindingKey, outBindingKey, passBindingKey, queueWord } from './delay-plan.js';

/** `quorum`: replicated Raft queues, no priorities on 3.10. `classic`: priorities 0–9, one node. */
export type QueueType = 'quorum' | 'classic';

/** An exchange, queue or binding to declare; plain data so tests can read the topology. */
export type Declaration =
  | { kind: 'exchange'; name: string; type: 'topic' | 'direct'; durable: boolean }
  | { kind: 'queue'; name: string; args: Record<string, string | number> }
  | { kind: 'bind-queue'; queue: string; exchange: string; key: string }
  | { kind: 'bind-exchange'; destination: string; source: string; key: string };

const MAX_NAME_BYTES = 255;

/**
 * Names of everything the transport creates under a prefix. Work queues are `<prefix>.<queue>` (the
 * queue name itself when the prefix is empty); internal objects are `<prefix>:<kind>…`, so no work
 * queue name can collide with them.
 */
export class Names {
  constructor(readonly prefix: string) {}

  work(queue: string): string {
    return this.prefix === '' ? queue : `${this.prefix}.${queue}`;
  }
  dead(queue: string): string {
    return `${this.prefix}:dead:${queue}`;
  }
  level(queue: string, k: number): string {
    return `${this.prefix}:delay:${String(k).padStart(2, '0')}:${queue}`;
  }
  levelExchange(k: number): string {
    return `${this.prefix}:delay:${String(k).padStart(2, '0')}`;
  }
  get outExchange(): string {
    return `${this.prefix}:delay:out`;
  }
  get deadExchange(): string {
    return `${this.prefix}:dead`;
  }
  get broadcastExchange(): string {
    return `${this.prefix}:broadcast`;
  }

  /** Every queue one logical queue owns (for stats, purge and cleanup). */
  queuesOf(queue: string): string[] {
    return [this.work(queue), this.dead(queue), ...Array.from({ length: DELAY_LEVELS }, (_, k) => this.level(queue, k))];
  }

  /** Every exchange the prefix owns. */
  exchanges(): string[] {
    return [
      ...Array.from({ length: DELAY_LEVELS }, (_, k) => this.levelExchange(k)),
      this.outExchange,
      this.deadExchange,
      this.broadcastExchange,
    ];
  }
}

export interface TopologyOptions {
  queueType: QueueType;
  delayQueueType: QueueType;
}

/** The exchanges every queue of a prefix uses: dead letters and broadcast. */
export function prefixTopology(names: Names): Declaration[] {
  return [
    { kind: 'exchange', name: names.deadExchange, type: 'direct', durable: true },
    { kind: 'exchange', name: names.broadcastExchange, type: 'direct', durable: true },
  ];
}

/** The delay level exchanges shared by every queue of a prefix, and the pass-through bindings between them. */
export function delayExchangeTopology(names: Names): Declaration[] {
  const out: Declaration[] = [];
  for (let k = 0; k < DELAY_LEVELS; k++) out.push({ kind: 'exchange', name: names.levelExchange(k), type: 'topic', durable: true });
  out.push({ kind: 'exchange', name: names.outExchange, type: 'topic', durable: true });
  for (let k = 0; k < DELAY_LEVELS; k++) {
    const next = k === 0 ? names.outExchange : names.levelExchange(k - 1);
    out.push({ kind: 'bind-exchange', destination: next, source: names.levelExchange(k), key: passBindingKey(k) });
  }
  return out;
}

/** The work queue of a logical queue and its dead-letter queue. */
export function queueTopology(names: Names, queue: string, opts: TopologyOptions): Declaration[] {
  const work = names.work(queue);
  checkName(work, 'queue name');
  checkName(names.level(queue, 0), 'delay queue name');
  if (Buffer.byteLength(outBindingKey(queueWord(queue))) > MAX_NAME_BYTES) {
    throw new RangeError(`queue name "${queue}" is too long for a delay routing key (at most 191 bytes once escaped)`);
  }
  const workArgs: Record<string, string | number> = {
    'x-queue-type': opts.queueType,
    'x-dead-letter-exchange': names.deadExchange,
    'x-dead-letter-routing-key': queue,
  };
  if (opts.queueType === 'classic') workArgs['x-max-priority'] = 9;
  return [
    { kind: 'queue', name: work, args: workArgs },
    { kind: 'queue', name: names.dead(queue), args: { 'x-queue-type': opts.queueType } },
    { kind: 'bind-queue', queue: names.dead(queue), exchange: names.deadExchange, key: queue },
  ];
}

/**
 * The delay level queues of a logical queue (level `k`: TTL 2^k ms, dead-lettering to the next
 * exchange down) and the binding that brings a finished delay to the work queue. Declared on the
 * queue's first delay (or `stats`/`purge`), so queues that never delay cost nothing.
 */
export function levelTopology(names: Names, queue: string, opts: TopologyOptions): Declaration[] {
  const word = queueWord(queue);
  const out: Declaration[] = [{ kind: 'bind-queue', queue: names.work(queue), exchange: names.outExchange, key: outBindingKey(word) }];
  for (let k = 0; k < DELAY_LEVELS; k++) {
    const args: Record<string, string | number> = {
      'x-queue-type': opts.delayQueueType,
      'x-message-ttl': 2 ** k,
      'x-dead-letter-exchange': k === 0 ? names.outExchange : names.levelExchange(k - 1),
    };
    if (opts.delayQueueType === 'quorum') {
      // Quorum sources can dead-letter at least once (3.10+); it needs reject-publish overflow.
      args['x-dead-letter-strategy'] = 'at-least-once';
      args['x-overflow'] = 'reject-publish';
    }
    out.push({ kind: 'queue', name: names.level(queue, k), args });
    out.push({ kind: 'bind-queue', queue: names.level(queue, k), exchange: names.levelExchange(k), key: levelBindingKey(word, k) });
  }
  return out;
}

function checkName(name: string, what: string): void {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new RangeError(`${what} "${name}" is longer than RabbitMQ's limit of ${MAX_NAME_BYTES} bytes`);
  }
}
