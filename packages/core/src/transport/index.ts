/**
 * `@celeriac/core/transport`: the kit for transport authors (not for task code). A transport supplies an
 * adapter — claim/settle/extend/release for a pull broker, start/credit plus the same for a push broker —
 * and the kit owns the rest of consumption: the prefetch bound, buffering and iteration, settle-once,
 * the held set that lease renewal and give-back use, give-back at close. Plus the plumbing transports
 * share: coalesced calls, intrusive lists, the header frame, Lua script files, error classification.
 * See "Writing a transport" in core's README.
 */
export { ConsumerKit, KitConsumer, KitDelivery, SETTLED, connectionError } from './kit.js';
export type { KitOptions } from './kit.js';
export type { ConsumerAdapter, Incoming, PreparedResultWrite, PullAdapter, PushAdapter, SettleAdapter, Sink } from './adapter.js';
export { ForeignAdapter } from './foreign.js';
export { Coalescer } from './coalescer.js';
export { Fifo } from './fifo.js';
export { LinkedList } from './linked-list.js';
export type { ListLinks } from './linked-list.js';
export { readScriptFiles } from './script-files.js';
export { decodeHeaderFrame, encodeHeaderFrame } from './header-frame.js';
