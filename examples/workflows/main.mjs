// Runs the chain once, then a beat with a 1-second schedule for a few ticks, all in one process.
import { chain } from '@celeriac/core';
import { app, dailyReport, sendEmail, schedules } from './tasks.mjs';

const t0 = performance.now();
const log = (tag, text) => console.log(`[+ ${((performance.now() - t0) / 1000).toFixed(2)}s] ${tag.padEnd(7)} ${text}`);

app.on('task:succeeded', (e) => log('done', `${e.name} ${e.taskId.slice(0, 8)} -> ${JSON.stringify(e.result)}`));
await app.worker({ concurrency: 4 }).start();

const result = await chain(dailyReport.s('2026-11-24'), sendEmail.s('ops@example.com')).applyAsync();
log('chain', `daily_report | send_email -> ${await result.get({ timeoutMs: 5_000 })}`);

const beat = app.beat({ schedules: { 'every-second': schedules['every-second'] }, leaseMs: 3_000 });
await beat.start();
log('beat', `leader: ${beat.isLeader}; waiting for three ticks`);
while (beat.sent.length < 3) await new Promise((r) => setTimeout(r, 100));
await new Promise((r) => setTimeout(r, 100));
log('beat', `sent ${beat.sent.map((s) => new Date(s.tickMs).toISOString().slice(11, 19)).join(', ')}`);
await app.close();
log('bye', 'worker and beat closed');
