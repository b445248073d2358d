import type { ServerKind } from './servers.js';

/** The part of the `testcontainers` package (v10) the harness uses. */
interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}
interface ContainerBuilder {
  withExposedPorts(...ports: number[]): ContainerBuilder;
  withCommand(command: string[]): ContainerBuilder;
  withEnvironment(env: Record<string, string>): ContainerBuilder;
  withWaitStrategy(strategy: unknown): ContainerBuilder;
  start(): Promise<StartedContainer>;
}
/** The shape of the `testcontainers` module as the harness uses it. */
export interface TestcontainersModule {
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: string | RegExp, times?: number): unknown };
}

/** How to run one kind of server in a container. */
export interface ContainerSpec {
  image: string;
  /** The port the server listens on inside the container. */
  port: number;
  /** The container's command; empty keeps the image's own. */
  command: string[];
  env: Record<string, string>;
  /** The log line that says it is ready, and how often it appears before it really is. */
  readyLog: string;
  readyLogTimes: number;
  url: (host: string, port: number) => string;
}

/** Images matching the project's servers (DESIGN.md §8), the port each serves, how it says it is ready. */
export const CONTAINERS: Readonly<Record<ServerKind, ContainerSpec>> = {
  redis: {
    image: 'redis:7.0',
    port: 6379,
    command: ['redis-server', '--save', '', '--appendonly', 'no'],
    env: {},
    readyLog: 'Ready to accept connections',
    readyLogTimes: 1,
    url: (h, p) => `redis://${h}:${p}`,
  },
  amqp: {
    image: 'rabbitmq:3.10',
    port: 5672,
    command: ['rabbitmq-server'],
    env: {},
    readyLog: 'Server startup complete',
    readyLogTimes: 1,
    url: (h, p) => `amqp://guest:guest@${h}:${p}`,
  },
  nats: {
    image: 'nats:2.9',
    port: 4222,
    command: ['-js'],
    env: {},
    readyLog: 'Server is ready',
    readyLogTimes: 1,
    url: (h, p) => `nats://${h}:${p}`,
  },
  postgres: {
    image: 'postgres:15',
    port: 5432,
    command: [],
    env: { POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' },
    // once for the temporary server that creates the database, once for the real one
    readyLog: 'database system is ready to accept connections',
    readyLogTimes: 2,
    url: (h, p) => `postgres://postgres@${h}:${p}/test`,
  },
};

/** How the package is imported; tests pass their own to check the missing-package error. */
export type Importer = (specifier: string) => Promise<unknown>;

const importByName: Importer = (specifier) => import(specifier);

/**
 * Load `testcontainers` on demand. It is not a dependency of this repository (no Docker engine on
 * the project's machines); without it, the error says what to install.
 */
export async function loadTestcontainers(importer: Importer = importByName): Promise<TestcontainersModule> {
  try {
    return (await importer('testcontainers')) as TestcontainersModule;
  } catch (err) {
    throw new Error(
      'a Docker engine is reachable but the package testcontainers is not installed: ' +
        'npm install --no-save testcontainers, or start the server yourself, or set its URL variable',
      { cause: err },
    );
  }
}

/** Start a container for `kind` (see `CONTAINERS`) and return its URL and a way to stop it. */
export async function startContainer(kind: ServerKind, importer?: Importer): Promise<{ url: string; stop: () => Promise<void> }> {
  const tc = await loadTestcontainers(importer);
  const spec = CONTAINERS[kind];
  let builder = new tc.GenericContainer(spec.image).withExposedPorts(spec.port);
  if (spec.command.length > 0) builder = builder.withCommand(spec.command);
  if (Object.keys(spec.env).length > 0) builder = builder.withEnvironment(spec.env);
  const started = await builder.withWaitStrategy(tc.Wait.forLogMessage(spec.readyLog, spec.readyLogTimes)).start();
  return {
    url: spec.url(started.getHost(), started.getMappedPort(spec.port)),
    stop: async () => {
      await started.stop();
    },
  };
}
