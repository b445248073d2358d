import { KOMBU_PRIORITY_STEPS } from './wire.js';

/** kombu's separator in priority list names and binding members (`Channel.sep`). */
export const SEP = '\x06\x16';

/**
 * Key names of kombu's Redis transport (`kombu/transport/redis.py`), with its optional
 * `global_keyprefix` prepended as kombu does (verbatim). The `_celeriac.*` keys are this package's
 * own: kombu never reads or writes them.
 */
export class KombuKeys {
  constructor(readonly prefix = '') {}

  get unacked(): string {
    return `${this.prefix}unacked`;
  }
  get unackedIndex(): string {
    return `${this.prefix}unacked_index`;
  }
  get unackedMutex(): string {
    return `${this.prefix}unacked_mutex`;
  }
  /** `_kombu.binding.<exchange>`: members `routing_key SEP pattern SEP queue`. */
  binding(exchange: string): string {
    return `${this.prefix}_kombu.binding.${exchange}`;
  }
  /** The list of a priority step: the queue's name for step 0, `queue SEP step` otherwise. */
  list(queue: string, step: number): string {
    return step === 0 ? `${this.prefix}${queue}` : `${this.prefix}${queue}${SEP}${step}`;
  }
  /** Every list of a queue, in the order kombu's BRPOP serves them (most urgent first). */
  lists(queue: string): string[] {
    return KOMBU_PRIORITY_STEPS.map((s) => this.list(queue, s));
  }
  /** celeriac's index of a queue's delayed messages (delivery_tag → due ms); the messages sit in `unacked`. */
  delayed(queue: string): string {
    return `${this.prefix}_celeriac.delayed.${queue}`;
  }
  /** celeriac's dead letters of a queue (kombu has none). */
  dead(queue: string): string {
    return `${this.prefix}_celeriac.dead.${queue}`;
  }
  broadcast(channel: string): string {
    return `${this.prefix}_celeriac.broadcast.${channel}`;
  }
}
