// The quick start: an HTTP service and a worker in one process, on memory:// (or BROKER_URL).
// It sends its own requests and prints what happens: a retry, an alert, a delayed task. Exits 0.
import { once } from 'node:events';
import { log, short } from './log.mjs';
import { createService } from './service.mjs';
import { app } from './tasks.mjs';

// What we expect to see before we stop: two orders charged, one report failed, one reminder sent.
const expected = { 'orders.charge': 2, 'reports.build': 1, 'email.reminder': 1 };
let finished;
const allFinished = new Promise((resolve) => (finished = resolve));
let reminderRequestedAt = 0;
const settle = (name) => {
  expected[name] -= 1;
  if (Object.values(expected).every((n) => n <= 0)) finished();
};

app.on('task:sent', (e) => {
  if (e.delayMs > 0) log('delayed', `${e.name} ${short(e.taskId)} will run in ${e.delayMs} ms`);
});
app.on('task:retried', (e) => {
  log('retry', `${e.name} ${short(e.taskId)} failed (${e.error.message}); retry ${e.retries + 1} in ${e.delayMs} ms`);
});
app.on('task:succeeded', (e) => {
  const extra = e.name === 'email.reminder' ? ` (${Date.now() - reminderRequestedAt} ms after the request)` : '';
  log('done', `${e.name} ${short(e.taskId)} -> ${JSON.stringify(e.result)}${extra}`);
  settle(e.name);
});
app.on('task:failed', (e) => settle(e.name)); // tasks.mjs raises the alert

const worker = app.worker({ queues: ['default'], concurrency: 4 });
await worker.start();
const server = createService(app);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const base = `http://127.0.0.1:${server.address().port}`;
log('ready', `service on ${base}, worker on ${process.env.BROKER_URL ? 'BROKER_URL' : 'memory://'}`);

async function post(path, body) {
  const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  log('http', `POST ${path} -> ${res.status} task ${short(json.taskId)}`);
  return json.taskId;
}

const firstOrder = await post('/orders', { orderId: 'A-1', amountCents: 1250 });
await post('/orders', { orderId: 'A-2', amountCents: 990 });
await post('/reports', { name: 'weekly' });
reminderRequestedAt = Date.now();
await post('/reminders', { to: 'ada@example.com', inMs: 1000 });

const timeout = setTimeout(() => {
  log('error', `gave up waiting; still expected: ${JSON.stringify(expected)}`);
  process.exit(1);
}, 12_000);
await allFinished;
clearTimeout(timeout);

const res = await fetch(`${base}/tasks/${firstOrder}`);
log('http', `GET /tasks/${short(firstOrder)} -> ${res.status} ${await res.text()}`);

server.close();
await worker.close();
await app.close();
log('bye', 'service and worker closed');
