#!/usr/bin/env node
/** `celeriac-dashboard`: the dashboard on its own (core's `celeriac dashboard` runs the same). */
import { runDashboardCli } from './run-dashboard-cli.js';

process.exitCode = await runDashboardCli(process.argv.slice(2));
