export { RedisResultBackend, createRedisResultBackend } from './redis-result-backend.js';
export type { RedisResultBackendConfig } from './redis-result-backend.js';
export { DEFAULT_OPTIONS, resolveOptions } from './options.js';
export type { RedisResultBackendOptions } from './options.js';
