import { describe, it } from 'vitest';
import { createMemoryBroker, createMemoryResultBackend, MemoryServer, type MemoryResultBackend } from '../src/index.js';
import { brokerSuite, createFakeClock, resultBackendSuite } from '../src/testing/index.js';

const clock = createFakeClock();
const server = new MemoryServer({ clock, visibilityTimeoutMs: 1000 });

brokerSuite({ describe, it }, 'memory', {
  create: () => createMemoryBroker({ server }),
  sleep: (ms) => clock.advance(ms),
  visibilityTimeoutMs: 1000,
  slackMs: 0,
  clock,
  fakeTime: true,
});

const backendClock = createFakeClock();
const shared = createMemoryResultBackend({ clock: backendClock });
resultBackendSuite({ describe, it }, 'memory', {
  // One store seen by several "clients": each is a view on it whose close() is its own.
  create: () => Object.assign(Object.create(shared) as MemoryResultBackend, { close: () => Promise.resolve() }),
  sleep: (ms) => backendClock.advance(ms),
  slackMs: 0,
});
