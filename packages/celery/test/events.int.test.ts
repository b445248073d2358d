import { createApp } from '@celeriac/core';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { sendCeleryEvents } from '../src/celery-events.js';
import { celeryProtocol } from '../src/protocol.js';
import { deleteAmqp, deleteExchange } from './amqp-helpers.js';
import { FIXTURES, PYTHON, requirePythonCelery } from './python.js';
import { deleteKeys, uniquePrefix } from './redis-helpers.js';

const py = requirePythonCelery();
const redisOk = py && (await requireServer('redis'));
const amqpOk = py && (await requireServer('amqp'));
const redis = `${serverUrl('redis').replace(/\/+$/, '')}/0`;
const amqp = serverUrl('amqp').replace(/\/+$/, '');

interface Seen {
  types: string[];
  workers: Record<string, { alive: boolean; sw_ident: string; processed: number; freq: number; heartbeats: number }>;
  tasks: Record<string, { name: string; state: string; result: string | null; exception: string | null; worker: string | null; args: string; kwargs: string }>;
}

/** Start fixtures/events_capture.py; resolves once it is subscribed, with a promise of what it saw. */
async function capture(env: Record<string, string>): Promise<{ result: Promise<Seen> }> {
  const proc = spawn(PYTHON, [`${FIXTURES}events_capture.py`, '20'], {
    cwd: FIXTURES,
    env: { ...process.env, ...env, PYTHONPATH: FIXTURES, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const result = new Promise<Seen>((resolve, reject) =>
    proc.once('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as Seen);
      else reject(new Error(`events_capture.py exited ${code}: ${err}`));
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const check = () => (out.includes('ready') ? resolve() : undefined);
    proc.stdout.on('data', check);
    result.catch(reject);
  });
  return { result };
}

for (const kind of ['redis', 'amqp'] as const) {
  describe.skipIf(kind === 'redis' ? !redisOk : !amqpOk)(`Celery monitoring events on ${kind}`, () => {
    it('a Python EventReceiver + State (what Flower runs) sees the Node worker and its tasks', async () => {
      const tag = randomBytes(4).toString('hex');
      const prefix = kind === 'redis' ? uniquePrefix('events') : `celeriac-test-${tag}`;
      const queue = kind === 'redis' ? 'events' : `${prefix}.events`;
      const brokerUrl = kind === 'redis' ? `${redis}?prefix=${encodeURIComponent(prefix)}` : `${amqp}?prefix=${prefix}`;
      const { result: seen } = await capture({ CELERY_BROKER: kind === 'redis' ? redis : `${amqp}//`, CELERY_PREFIX: prefix });
      const app = createApp({ protocol: celeryProtocol, broker: brokerUrl });
      app.task('node.ok', (n: number) => n * 2);
      app.task('node.bad', () => {
        throw new RangeError('out of range');
      });
      app.task('node.kw', (n: number, kw: { to: string }) => `${kw.to}${n}`, { kwargs: true });
      const hostname = `celeriac-${tag}@test`;
      try {
        const stop = await sendCeleryEvents(app, { hostname, heartbeatSeconds: 0.2 });
        const worker = app.worker({ queues: [queue], heartbeatMs: 200 });
        const done = new Promise<void>((resolve) => {
          let n = 0;
          const count = () => {
            if (++n === 3) resolve();
          };
          app.on('task:succeeded', count);
          app.on('task:failed', count);
        });
        await worker.start();
        const ok = await app.sendTask('node.ok', [21], { queue });
        const bad = await app.sendTask('node.bad', [], { queue });
        const kw = await app.sendTask('node.kw', [1], { queue, kwargs: { to: "it's", n: [1, null] } });
        await done;
        // Celery's worker-heartbeat is sent on each of the worker's own heartbeats: wait for two of them.
        await new Promise<void>((resolve) => {
          let beats = 0;
          const off = app.on('worker:heartbeat', () => {
            if (++beats === 2) {
              off();
              resolve();
            }
          });
        });
        await worker.close();
        const s = await seen;
        stop();
        expect(s.types).toEqual(expect.arrayContaining(['worker-online', 'worker-heartbeat', 'task-received', 'task-started', 'task-succeeded', 'task-failed', 'worker-offline']));
        expect(s.workers[hostname]).toMatchObject({ sw_ident: 'celeriac', processed: 3, alive: false }); // offline at the end
        expect(s.types.filter((t) => t === 'worker-heartbeat').length).toBeGreaterThan(0);
        expect(s.tasks[ok.id]).toMatchObject({ name: 'node.ok', state: 'SUCCESS', result: '42', worker: hostname });
        expect(s.tasks[bad.id]).toMatchObject({ name: 'node.bad', state: 'FAILURE', exception: "RangeError('out of range')" });
        // task-received carries the real reprs (Python's, from the message's argsrepr/kwargsrepr)
        expect(s.tasks[ok.id]).toMatchObject({ args: '(21,)', kwargs: '{}' });
        expect(s.tasks[kw.id]).toMatchObject({ name: 'node.kw', state: 'SUCCESS', args: '(1,)', kwargs: `{'to': "it's", 'n': [1, None]}` });
      } finally {
        await app.close();
        if (kind === 'redis') await deleteKeys(prefix);
        else {
          await deleteAmqp(prefix, [queue]);
          await deleteExchange('celeryev'); // declared by this test (and by the Python receiver)
        }
      }
    }, 40_000);
  });
}
