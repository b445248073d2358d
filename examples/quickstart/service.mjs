// A small HTTP service that enqueues a task per request (node:http, no framework).
//   POST /orders     {"orderId": "A-1", "amountCents": 1250}  -> 202 {"taskId": "…"}
//   POST /reports    {"name": "weekly"}                        -> 202 {"taskId": "…"}
//   POST /reminders  {"to": "ada@example.com", "inMs": 1000}  -> 202 {"taskId": "…"}
//   GET  /tasks/:id                                            -> 200 {"state": "SUCCESS", "result": …}
import { createServer } from 'node:http';
import { buildReport, chargeOrder, sendReminder } from './tasks.mjs';

async function readJson(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body === '' ? {} : JSON.parse(body);
}

function reply(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

export function createService(app) {
  return createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method === 'POST' && url.pathname === '/orders') {
        const { orderId, amountCents } = await readJson(req);
        const r = await chargeOrder.delay(orderId, amountCents);
        return reply(res, 202, { taskId: r.id });
      }
      if (req.method === 'POST' && url.pathname === '/reports') {
        const { name } = await readJson(req);
        const r = await buildReport.delay(name);
        return reply(res, 202, { taskId: r.id });
      }
      if (req.method === 'POST' && url.pathname === '/reminders') {
        const { to, inMs } = await readJson(req);
        const r = await sendReminder.applyAsync([to], { countdownMs: inMs });
        return reply(res, 202, { taskId: r.id });
      }
      const m = /^\/tasks\/([\w-]+)$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const result = app.asyncResult(m[1]);
        const state = await result.state();
        return reply(res, 200, state === 'SUCCESS' ? { state, result: await result.get({ timeoutMs: 1000 }) } : { state });
      }
      return reply(res, 404, { error: 'not found' });
    } catch (err) {
      // e.g. ERR_NO_RESULT_BACKEND for GET /tasks/:id on a broker without a result backend
      return reply(res, err?.code === 'ERR_NO_RESULT_BACKEND' ? 501 : 500, { error: err.message, code: err.code });
    }
  });
}
