export { createApp, App } from './app.js';
export type { AppOptions, ApplyOptions, Kwargs, TaskOptions, Task, TaskFor, TaskHandler, Route, AnyTask } from './app.js';
export { chain, chord, group, Chain, Chord, Group, GroupResult, Signature } from './canvas.js';
export type { LinkOptions, PartialSignature, Step } from './canvas.js';
export { AsyncResult } from './async-result.js';
export type { GetOptions } from './async-result.js';
export type {
  Broker,
  BrokerCapabilities,
  Broadcast,
  ConsumeOptions,
  DeadLetter,
  DeadLetterOptions,
  DeadLetters,
  Delivery,
  HeaderValue,
  Headers,
  NackOptions,
  OutgoingMessage,
  PublishOptions,
  TransactionClient,
  QueueSpec,
  QueueStats,
} from './broker.js';
export { CLOSE_GRACE_MS, settleWithin, systemClock, sleep } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { currentTask } from './context.js';
export type { TaskContext } from './context.js';
export {
  CeleriacError,
  ErrorCode,
  TaskFailedError,
  UnrecoverableError,
  isCeleriacError,
  serializeError,
  wrapError,
} from './errors.js';
export type { SerializedError, CeleriacErrorOptions } from './errors.js';
export type { CeleriacEvents, EventName, Listener, TaskEventBase, WorkerEventBase } from './events.js';
export { guardBroker, GuardedBroker } from './guard.js';
export type { BrokerEvent, BrokerEventSource, GuardOptions } from './guard.js';
export { newId, newMessageId } from './ids.js';
export { silentLogger, redactUrl } from './logger.js';
export type { Logger } from './logger.js';
export { createMemoryBroker, MemoryBroker, MemoryServer } from './memory-broker.js';
export type { MemoryBrokerOptions, MemoryServerOptions } from './memory-broker.js';
export { createMemoryResultBackend, MemoryResultBackend } from './memory-backend.js';
export type { MemoryResultBackendOptions } from './memory-backend.js';
export { encodeTask, decodeTask } from './message.js';
export type { TaskMessage, Embed, SignatureData } from './message.js';
export { resolveBroker, resolveResultBackend, parseUrlOptions, serverTarget } from './resolve.js';
export type { BrokerFactory, ResultBackendFactory, FactoryContext, UrlOptions } from './resolve.js';
export { TaskState, READY_STATES } from './result-backend.js';
export type {
  ResultBackend,
  ResultBackendCapabilities,
  ResultMeta,
  StoredSchedule,
  StoredScheduleList,
  WaitOptions,
} from './result-backend.js';
export { backoffDelayMs } from './retry.js';
export type { RetryOptions } from './retry.js';
export { jsonSerializer, msgpackSerializer, serializerFor } from './serializer.js';
// For protocol codecs (see `Codec`): the decoded-size bound every codec applies.
export { checkDecodedSize, DEFAULT_MAX_DECODED_BYTES, inflateError } from './serializer.js';
export type { Serializer, SerializerName } from './serializer.js';
export { Worker } from './worker.js';
export type { WorkerOptions, CloseOptions, CloseReport } from './worker.js';
export { Beat } from './beat.js';
export type { BeatOptions, Schedule } from './beat.js';
export { Schedules } from './schedules.js';
export type {
  NormalizedSchedule,
  RuntimeSchedule,
  ScheduleEntry,
  ScheduleOptions,
  SchedulesHost,
  UpsertResult,
} from './schedules.js';
export { EVENTS_CHANNEL, EventPublisher, watchEvents } from './monitor.js';
export type { RemoteEvent } from './monitor.js';
export { createMetrics, MetricsCollector } from './metrics.js';
export type { MetricsOptions } from './metrics.js';
export { tracingActive } from './tracing.js';
export { celeriacCodec, celeriacProtocol } from './protocol.js';
export type { Codec, Protocol } from './protocol.js';
// Transport plumbing (the kit, Coalescer, LinkedList, header frame, script files) is exported from
// `@celeriac/core/transport`.
