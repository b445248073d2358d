/**
 * `@celeriac/core/testing`: the conformance suites every broker and result backend must pass,
 * runner-agnostic (`describe`/`it` passed in), and a fake clock.
 */
export { createFakeClock, flushPromises } from './fake-clock.js';
export type { FakeClock } from './fake-clock.js';
export { brokerSuite } from './broker-suite.js';
export type { BrokerSuiteEnv, CompressionDialect, SuiteApi, SuiteTransaction } from './broker-suite.js';
export { resultBackendSuite } from './backend-suite.js';
export type { BackendSuiteEnv } from './backend-suite.js';
export { workerSuite } from './worker-suite.js';
