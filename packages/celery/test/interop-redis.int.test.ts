import { requireServer, serverUrl } from '@celeriac/test-servers';
import { describe } from 'vitest';
import { interopSuite } from './interop-scenarios.js';
import { requirePythonCelery } from './python.js';
import { deleteKeys, uniquePrefix } from './redis-helpers.js';

const ok = (await requireServer('redis')) && requirePythonCelery();
const redis = serverUrl('redis').replace(/\/+$/, '');
const prefix = uniquePrefix('interop');

describe.skipIf(!ok)('Redis', () => {
  interopSuite('Redis (kombu transport)', {
    // Both sides share kombu's global_keyprefix and a 3 s visibility timeout (the crash test waits it out).
    brokerUrl: `${redis}/0?prefix=${encodeURIComponent(prefix)}&visibilityTimeoutMs=3000&sweepIntervalMs=100`,
    resultUrl: `${redis}/0`,
    pythonEnv: { CELERY_BROKER: `${redis}/0`, CELERY_BACKEND: `${redis}/0`, CELERY_PREFIX: prefix, CELERY_VT: '3' },
    queues: { py: 'py', node: 'node', kill: 'kill' },
    cleanup: (taskIds) => deleteKeys(prefix, taskIds.map((id) => `celery-task-meta-${id}`)),
  });
});
