import { chain, createApp, currentTask, Signature, type App, type Broker, type Worker } from '@celeriac/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { celeryProtocol } from '../src/protocol.js';
import { PythonDriver, PythonWorker } from './python.js';

export interface InteropEnv {
  /** The Node app's broker URL (Celery protocol). */
  brokerUrl: string;
  resultUrl: string;
  /** Environment of the Python processes (fixtures/interop_app.py). */
  pythonEnv: Record<string, string>;
  /** Queue names, unique to the file. */
  queues: { py: string; node: string; kill: string };
  /** Remove what the file created; `taskIds` are the result keys to drop. */
  cleanup(taskIds: string[]): Promise<void>;
}

class QuotaError extends Error {
  override name = 'QuotaError';
}

const waitUntil = async (what: string, cond: () => Promise<boolean>, budgetMs = 20_000): Promise<void> => {
  const until = Date.now() + budgetMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * Node and Python Celery on the same broker and result backend, both ways. One Python worker and one
 * Python client (driver) per file; a second Python worker for the crash test.
 */
export function interopSuite(name: string, env: InteropEnv): void {
  describe(`Celery 5 interop on ${name}`, () => {
    const { py, node, kill } = env.queues;
    const ids: string[] = [];
    let app: App;
    let worker: Worker;
    let killWorker: Worker | undefined;
    let pyWorker: PythonWorker | undefined;
    let pyDriver: PythonDriver | undefined;
    const flakyRuns = new Map<string, number>();

    beforeAll(async () => {
      app = createApp({ protocol: celeryProtocol, broker: env.brokerUrl, resultBackend: env.resultUrl });
      app.task('node.add', (a: number, b: number) => a + b);
      app.task('node.mul', (a: number, b: number) => a * b);
      app.task('node.fail', (what: string) => {
        throw new TypeError(`wrong type: ${what}`);
      });
      app.task('node.quota', (what: string) => {
        throw new QuotaError(`over quota: ${what}`);
      });
      app.task(
        'node.flaky',
        (tag: string) => {
          const runs = (flakyRuns.get(tag) ?? 0) + 1;
          flakyRuns.set(tag, runs);
          if (runs === 1) throw new Error(`first run of ${tag} fails`);
          return { tag, retries: currentTask().retries };
        },
        { maxRetries: 2, retryBackoffMs: 300, retryJitter: false },
      );
      app.task('node.when', () => ({ at: Date.now(), eta: currentTask().headers['eta'] ?? null }));
      app.task('node.echo', (...args: unknown[]) => ({ args, parentId: currentTask().parentId, rootId: currentTask().rootId }));
      app.task('shared.slow', (_seconds: number) => 'node');
      app.task('node.notify', (count: number, kw: { to: string; subject: string }) => `${kw.to}: ${kw.subject} (${count})`, { kwargs: true });
      app.task('node.echo.kw', (...all: unknown[]) => ({ args: all.slice(0, -1), kwargs: all[all.length - 1] }), { kwargs: true });
      app.on('task:received', (e) => {
        ids.push(e.taskId);
      });
      worker = app.worker({ queues: [node], concurrency: 4, prefetchMultiplier: 1 });
      pyDriver = PythonDriver.start(env.pythonEnv);
      [pyWorker] = await Promise.all([PythonWorker.start(env.pythonEnv, [py], `py-${py}`), worker.start()]);
    }, 60_000);

    afterAll(async () => {
      await Promise.allSettled([pyWorker?.stop(), pyDriver?.close(), killWorker?.close(), worker?.close()]);
      await app?.close();
      await env.cleanup(ids);
    }, 60_000);

    const driver = () => pyDriver!;
    const track = (id: string) => {
      ids.push(id);
      return id;
    };

    it('Node → Python worker: the result is read by both sides', async () => {
      const r = await app.sendTask<number>('py.add', [2, 3], { queue: py });
      track(r.id);
      expect(await r.get({ timeoutMs: 20_000 })).toBe(5);
      expect(await driver().get(r.id)).toMatchObject({ value: 5, state: 'SUCCESS' });
    });

    it('Python → Node worker: the result is read by both sides', async () => {
      const id = track(await driver().send('node.add', [2, 3], { queue: node }));
      expect(await driver().get(id)).toMatchObject({ value: 5, state: 'SUCCESS' });
      expect(await app.asyncResult(id).get({ timeoutMs: 5000 })).toBe(5);
      const echo = track(await driver().send('node.echo', [1, 'two', { three: [3] }], { queue: node }));
      expect((await driver().get(echo)).value).toEqual({ args: [1, 'two', { three: [3] }], parentId: null, rootId: echo });
    });

    it('a Python failure arrives in Node with its type and message', async () => {
      const r = await app.sendTask('py.fail', ['bad input 42'], { queue: py });
      track(r.id);
      await expect(r.get({ timeoutMs: 20_000 })).rejects.toMatchObject({ name: 'ValueError', message: 'bad input 42' });
      expect((await r.info())?.error?.stack).toMatch(/Traceback[\s\S]*ValueError: bad input 42/);
    });

    it('a Node failure arrives in Python with its type and message', async () => {
      const a = track(await driver().send('node.fail', ['x'], { queue: node }));
      expect(await driver().get(a)).toMatchObject({ state: 'FAILURE', error: { type: 'TypeError', module: 'builtins', message: 'wrong type: x' } });
      const b = track(await driver().send('node.quota', ['y'], { queue: node }));
      expect(await driver().get(b)).toMatchObject({ state: 'FAILURE', error: { type: 'QuotaError', message: 'over quota: y' } });
    });

    it('retries: a Python task retried by Python for Node, a Node task retried by Node for Python', async () => {
      const r = await app.sendTask('py.flaky', ['from-node'], { queue: py });
      track(r.id);
      expect(await r.get({ timeoutMs: 20_000 })).toEqual({ tag: 'from-node', retries: 1 });
      const id = track(await driver().send('node.flaky', ['from-python'], { queue: node }));
      expect(await driver().get(id)).toMatchObject({ state: 'SUCCESS', value: { tag: 'from-python', retries: 1 } });
      expect(flakyRuns.get('from-python')).toBe(2);
    });

    it('ETA, Node → Python: the broker holds the task until due, then Python runs it', async () => {
      const broker = await app.getBroker();
      const sentAt = Date.now();
      const r = await app.sendTask<number>('py.when', [], { queue: py, countdownMs: 1500 });
      track(r.id);
      // Held by the broker, not by a worker: counted as delayed, not in flight.
      const s = await broker.stats(py);
      expect([s.delayed, s.inFlight]).toEqual([1, 0]);
      const ranAt = (await r.get({ timeoutMs: 20_000 })) * 1000;
      expect(ranAt).toBeGreaterThanOrEqual(sentAt + 1500);
    });

    it('ETA, Python → Node: the Node worker parks it in the broker, then runs it when due', async () => {
      const broker = await app.getBroker();
      const id = track(await driver().send('node.when', [], { queue: node, countdown: 2 }));
      await waitUntil('the task is parked as delayed', async () => (await broker.stats(node)).delayed === 1 || (await driver().state(id)) === 'SUCCESS');
      const out = await driver().get(id);
      const { at, eta } = out.value as { at: number; eta: string };
      expect(at).toBeGreaterThanOrEqual(Date.parse(eta));
    });

    it('a Python chain whose second step is a Node task', async () => {
      const r = await driver().request<{ id: string; ids: string[] }>({
        op: 'chain',
        steps: [
          { name: 'py.add', args: [1, 2], options: { queue: py } },
          { name: 'node.mul', args: [10], options: { queue: node } },
          { name: 'py.add', args: [5], options: { queue: py } },
        ],
      });
      r.ids.forEach(track);
      expect(await driver().get(r.id)).toMatchObject({ value: 35, state: 'SUCCESS' });
      expect(await app.asyncResult(r.ids[1]!).get({ timeoutMs: 5000 })).toBe(30);
    });

    it('a Node chain whose second step is a Python task', async () => {
      const add = app.tasks.get('node.add')!;
      const steps = [
        new Signature(app, add.name, [1, 2]).withId(),
        new Signature(app, 'py.mul', [10], { queue: py }).withId(),
        new Signature(app, 'node.add', [5]).withId().set({ queue: node }),
      ];
      steps.forEach((s) => track(s.options.taskId!));
      const r = await chain(steps[0]!.set({ queue: node }), steps[1]!, steps[2]!).applyAsync();
      expect(await r.get({ timeoutMs: 20_000 })).toBe(35);
      expect(await driver().get(steps[1]!.options.taskId!)).toMatchObject({ value: 30, state: 'SUCCESS' });
    });

    it('Python → Node with keyword arguments: delay(x, to=…, subject=…) and apply_async(kwargs=…) reach a kwargs: true task', async () => {
      const a = track(await driver().delay('node.notify', [3], { to: 'ops@example.com', subject: 'disk full' }, { queue: node }));
      expect(await driver().get(a)).toMatchObject({ state: 'SUCCESS', value: 'ops@example.com: disk full (3)' });
      const b = track(await driver().send('node.echo.kw', [1, 'two'], { queue: node }, { to: 'ann', n: [1, null], nested: { ü: true } }));
      expect(await driver().get(b)).toMatchObject({ state: 'SUCCESS', value: { args: [1, 'two'], kwargs: { to: 'ann', n: [1, null], nested: { ü: true } } } });
      const c = track(await driver().send('node.echo.kw', [7], { queue: node }));
      expect(await driver().get(c)).toMatchObject({ state: 'SUCCESS', value: { args: [7], kwargs: {} } });
    });

    it('Node → Python with keyword arguments: sendTask and a signature with kwargs bind to Python parameters', async () => {
      const r = await app.sendTask<string>('py.compose', ['Hello'], { queue: py, kwargs: { name: 'Ann', punctuation: '?' } });
      track(r.id);
      expect(await r.get({ timeoutMs: 20_000 })).toBe('Hello, Ann?');
      const s = await new Signature<string>(app, 'py.compose', ['Hi'], { queue: py }).withKwargs({ shout: true }).applyAsync();
      track(s.id);
      expect(await s.get({ timeoutMs: 20_000 })).toBe('HI, WORLD!');
      expect(await driver().get(s.id)).toMatchObject({ state: 'SUCCESS', value: 'HI, WORLD!' });
    });

    it('Python kwargs for a Node task without kwargs: true: FAILURE with ERR_TASK_SIGNATURE, in Python and Node, never run', async () => {
      const id = track(await driver().delay('node.add', [2], { b: 3 }, { queue: node }));
      const out = await driver().get(id);
      expect(out).toMatchObject({ state: 'FAILURE', error: { type: 'CeleriacError' } });
      expect(out.error!.message).toMatch(/^task "node\.add" takes no keyword arguments .*, got b \(ERR_TASK_SIGNATURE\)$/);
      await expect(app.asyncResult(id).get({ timeoutMs: 5000 })).rejects.toMatchObject({ code: 'ERR_TASK_SIGNATURE', name: 'CeleriacError' });
      const letters = await (await app.getBroker()).deadLetters.list(node, { limit: 1000 });
      expect(letters.map((l) => l.reason)).toContainEqual(expect.stringMatching(/^ERR_TASK_SIGNATURE: task "node\.add"/));
    });

    it('chains keep every step\'s kwargs across languages, also when a Node worker sends the next step on', async () => {
      // Python chain: py.add(1, 2) → node.notify(3, to=…, subject=…) → py.compose(<that>, name='Ann', shout=True);
      // the Node worker sends the Python step on with its kwargs.
      const r = await driver().request<{ id: string; ids: string[] }>({
        op: 'chain',
        steps: [
          { name: 'py.add', args: [1, 2], options: { queue: py } },
          { name: 'node.notify', args: [], kwargs: { to: 'ops', subject: 'sum' }, options: { queue: node } },
          { name: 'py.compose', args: [], kwargs: { name: 'Ann', shout: true }, options: { queue: py } },
        ],
      });
      r.ids.forEach(track);
      expect(await driver().get(r.id)).toMatchObject({ state: 'SUCCESS', value: 'OPS: SUM (3), ANN!' });
      // Node chain: node.add(1, 2) → py.compose(3, name='Bo') → node.notify(<that>, to=…, subject=…).
      const notify = app.tasks.get('node.notify')!;
      const steps = [
        new Signature(app, 'node.add', [1, 2], { queue: node }).withId(),
        new Signature(app, 'py.compose', [], { queue: py }).withKwargs({ name: 'Bo' }).withId(),
        new Signature(app, notify.name, [], { queue: node }).withKwargs({ to: 'dev', subject: 'hi' }).withId(),
      ];
      steps.forEach((st) => track(st.options.taskId!));
      const n = await chain(steps[0]!, steps[1]!, steps[2]!).applyAsync();
      expect(await n.get({ timeoutMs: 20_000 })).toBe('dev: hi (3, Bo!)');
    });

    it('a Python worker killed mid-task: a Node worker finishes the task', async () => {
      const victim = await PythonWorker.start(env.pythonEnv, [kill], `victim-${kill}`);
      let id: string;
      try {
        id = track(await driver().send('shared.slow', [60], { queue: kill }));
        await waitUntil('the Python worker started the task', async () => (await driver().state(id)) === 'STARTED');
      } finally {
        await victim.kill();
      }
      // Only now a Node worker listens on the queue: whatever it runs came back from the dead worker.
      killWorker = app.worker({ queues: [kill], concurrency: 1 });
      await killWorker.start();
      expect(await app.asyncResult(id).get({ timeoutMs: 30_000 })).toBe('node');
      expect(await driver().get(id)).toMatchObject({ value: 'node', state: 'SUCCESS' });
    }, 60_000);
  });
}

export type { Broker };
