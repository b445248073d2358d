/**
 * `@celeriac/transport-nats`: celeriac's NATS JetStream broker and JetStream KV result backend.
 */
export { createNatsBroker, NatsBroker } from './nats-broker.js';
export type { NatsBrokerOptions, NatsStorage } from './options.js';
export type { NatsConnectionOptions } from './connection.js';
export { createNatsResultBackend, NatsResultBackend } from './nats-result-backend.js';
export type { NatsResultBackendOptions } from './nats-result-backend.js';
