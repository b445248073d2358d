export { acquireServer, probeServer, requireServer, type AcquiredServer } from './acquire-server.js';
export { findBinary, postgresBinDir, requireBinary, requirePostgresBinaries } from './binaries.js';
export { dockerEngineReachable } from './docker.js';
export { freePort, isPortClash, retryOnPortClash } from './ports.js';
export {
  startPrivateNats,
  startPrivateNatsCluster,
  type PrivateNatsCluster,
  type PrivateNatsClusterOptions,
  type PrivateNatsOptions,
  type PrivateNatsServer,
} from './private-nats.js';
export { startPrivatePostgres, type PrivatePostgresOptions, type PrivatePostgresServer } from './private-postgres.js';
export {
  rabbitMqDataDir,
  rabbitMqNodeEnv,
  rabbitMqSbinDir,
  rabbitMqServerCommand,
  startPrivateRabbitMq,
  startPrivateRabbitMqCluster,
  writeRabbitMqNodeFiles,
  type PrivateRabbitMqCluster,
  type PrivateRabbitMqClusterOptions,
  type PrivateRabbitMqOptions,
  type PrivateRabbitMqServer,
  type RabbitMqNodeSpec,
} from './private-rabbitmq.js';
export {
  redisCommand,
  startPrivateRedis,
  startPrivateRedisCluster,
  type PrivateRedisCluster,
  type PrivateRedisClusterOptions,
  type PrivateRedisOptions,
} from './private-redis.js';
export { managedServer, wipe, type PrivateServer, type PrivateServerKind, type ServerDriver, type StopMode } from './private-server.js';
export { startServerProcess, stopServerProcess, waitUntilReady, type ProcessExit, type ServerProcess } from './server-process.js';
export { selectServer, type Selection, type SelectionInput } from './server-selection.js';
export { envUrl, isAnswering, redact, SERVER_ENV, SERVER_KINDS, serverUrl, type ServerKind } from './servers.js';
export { skipOrFail, underCi } from './skip.js';
export { startTcpProxy, viaPort, type TcpProxy, type TcpProxyOptions } from './tcp-proxy.js';
export { CONTAINERS, loadTestcontainers, startContainer, type ContainerSpec, type Importer, type TestcontainersModule } from './testcontainers.js';
