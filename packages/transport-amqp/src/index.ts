export { AmqpBroker, createAmqpBroker, capabilitiesFor, ERR_TOPOLOGY } from './amqp-broker.js';
export type { AmqpBrokerOptions } from './options.js';
export type { QueueType } from './topology.js';
export { ERR_UNROUTABLE } from './publisher.js';
export { DELAY_LEVELS, MAX_DELAY_CHUNK_MS, planDelay } from './delay-plan.js';
export type { DelayPlan } from './delay-plan.js';
