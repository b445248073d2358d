import { afterAll, describe, it } from 'vitest';
import { requireServer } from '@celeriac/test-servers';
import { runCrashScenario, TASKS } from './crash-scenario.js';
import { deleteStreams, uniquePrefix, urlWith } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('crash');

describe.skipIf(!ok)('NATS: a worker process killed with SIGKILL while it holds its bound', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  it(`loses none of ${TASKS} tasks: every id is SUCCESS in the KV backend, duplicates counted`, async () => {
    await runCrashScenario({ url: urlWith({ prefix, visibilityTimeoutMs: 2000 }), label: 'crash test' });
  }, 90_000);
});
