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

// The refusal branches: a backend with none of the optional operations (as a backend written against the
// first contract would be) must pass the same suite, and app.schedules refuses it with ERR_UNSUPPORTED.
const bare = createMemoryResultBackend({ clock: backendClock });
resultBackendSuite({ describe, it }, 'memory without the optional operations', {
  create: () =>
    Object.assign(Object.create(bare) as MemoryResultBackend, {
      capabilities: { counters: false, leases: false, revocations: false, rateLimits: false },
      close: () => Promise.resolve(),
      ...Object.fromEntries(
        ['incr', 'acquireLease', 'renewLease', 'releaseLease', 'revoke', 'isRevoked', 'listRevoked', 'takeTokens', 'getSchedule', 'listSchedules', 'schedulesVersion', 'putSchedule', 'deleteSchedule'].map((k) => [k, undefined]),
      ),
    }),
  sleep: (ms) => backendClock.advance(ms),
  slackMs: 0,
});
