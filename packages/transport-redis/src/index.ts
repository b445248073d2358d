export { RedisBroker, createRedisBroker } from './redis-broker.js';
export type { RedisBrokerConfig } from './redis-broker.js';
export { DEFAULT_OPTIONS, resolveOptions } from './options.js';
export type { RedisBrokerOptions } from './options.js';
export { queueKeys, prefixPattern } from './keys.js';
export type { QueueKeys } from './keys.js';
