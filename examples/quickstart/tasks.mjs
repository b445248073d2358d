// The app and its tasks. Both the quick start (main.mjs) and `celeriac worker --app` load this module.
import { createApp, currentTask } from '@celeriac/core';
import { log, short } from './log.mjs';

export const app = createApp({
  // memory:// runs everything in this process; set BROKER_URL to use redis://, amqp:// or nats://.
  broker: process.env.BROKER_URL ?? 'memory://',
  // The memory broker comes with a memory result backend; other brokers need one to read results.
  ...(process.env.RESULT_BACKEND_URL ? { resultBackend: process.env.RESULT_BACKEND_URL } : {}),
});

// Charging an order: the payment gateway times out on the first attempt, so the task is retried
// (through the broker's delayed delivery, 200 ms later) and succeeds on the second.
export const chargeOrder = app.task(
  'orders.charge',
  async (orderId, amountCents) => {
    if (currentTask().retries === 0) throw new Error(`payment gateway timed out for order ${orderId}`);
    return { orderId, chargedCents: amountCents };
  },
  { maxRetries: 3, retryBackoffMs: 200, retryJitter: false },
);

// Building a report: its data source is down, so every attempt fails. After the last retry the
// task fails for good, goes to the dead-letter queue, and `task:failed` fires.
export const buildReport = app.task(
  'reports.build',
  async (name) => {
    throw new Error(`report "${name}": the data warehouse is unreachable`);
  },
  { maxRetries: 1, retryBackoffMs: 100 },
);

// A reminder e-mail, sent with a countdown: it waits in the broker, not in the worker.
export const sendReminder = app.task('email.reminder', async (to) => `reminder sent to ${to}`);

// The alert (Celery's task_failure signal): here it prints; in production, page someone.
app.on('task:failed', (e) => {
  log('ALERT', `${e.name} ${short(e.taskId)} failed for good after ${e.retries + 1} attempts: ${e.error.message}`);
});
