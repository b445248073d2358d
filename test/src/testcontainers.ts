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
  withWaitStrategy(strategy: unknown): ContainerBuilder;
  start(): Promise<StartedContainer>;
}
export interface TestcontainersModule {
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: string | RegExp, times?: number): unknown };
}

/** Images matching the project's servers (DESIGN.md §8), the port each serves, how it says it is ready. */
export const CONTAINERS: Readonly<
  Record<ServerKind, { image: string; port: number; command: string[]; readyLog: string; url: (host: string, port: number) => string }>
> = {
  redis: {
    image: 'redis:7.0',
    port: 6379,
    command: ['redis-server', '--save', '', '--appendonly', 'no'],
    readyLog: 'Ready to accept connections',
    url: (h, p) => `redis://${h}:${p}`,
  },
  amqp: {
    image: 'rabbitmq:3.10',
    port: 5672,
    command: ['rabbitmq-server'],
    readyLog: 'Server startup complete',
    url: (h, p) => `amqp://guest:guest@${h}:${p}`,
  },
  nats: {
    image: 'nats:2.9',
    port: 4222,
    command: ['-js'],
    readyLog: 'Server is ready',
    url: (h, p) => `nats://${h}:${p}`,
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

/** Start a container for `kind` and return its URL and a way to stop it. */
export async function startContainer(
  kind: ServerKind,
  importer?: Importer,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const tc = await loadTestcontainers(importer);
  const spec = CONTAINERS[kind];
  const started = await new tc.GenericContainer(spec.image)
    .withExposedPorts(spec.port)
    .withCommand(spec.command)
    .withWaitStrategy(tc.Wait.forLogMessage(spec.readyLog))
    .start();
  return {
    url: spec.url(started.getHost(), started.getMappedPort(spec.port)),
    stop: async () => {
      await started.stop();
    },
  };
}
