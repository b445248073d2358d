export { createDashboard, DashboardErrorCode } from './dashboard.js';
export type { Dashboard, DashboardOptions } from './dashboard.js';
export type { BasicAuth } from './auth.js';
export { runDashboardCli } from './run-dashboard-cli.js';
export type { DashboardCliIo } from './run-dashboard-cli.js';
export { DashboardState } from './state.js';
export type { DashboardStateOptions, RateSeries, TaskView, WorkerStatus, WorkerView } from './state.js';
export type { DeadLetterView, Overview, QueueView, ScheduleView, SchedulesView } from './routes.js';
