// The seed's workflow in celeriac: daily_report | send_email as a chain, and the report as a periodic task.
import { createApp } from '@celeriac/core';

export const app = createApp({
  broker: process.env.BROKER_URL ?? 'memory://',
  ...(process.env.RESULT_BACKEND_URL ? { resultBackend: process.env.RESULT_BACKEND_URL } : {}),
});

export const dailyReport = app.task('reports.daily', async (day) => ({ day, orders: 42, revenueCents: 129_900 }));

export const sendEmail = app.task('email.send', async (report, to) => {
  return `sent "${report.day}: ${report.orders} orders, ${(report.revenueCents / 100).toFixed(2)} EUR" to ${to}`;
});

// `celeriac beat -A examples/workflows/tasks.mjs` sends these; run two for failover.
export const schedules = {
  'daily-report': { task: 'reports.daily', cron: '0 7 * * *', timezone: 'Europe/Stockholm', args: ['today'] },
  'every-second': { task: 'reports.daily', everyMs: 1_000, args: ['tick'] },
};
