#!/usr/bin/env node
import { runBenchCli } from './run-bench-cli.js';

process.exitCode = await runBenchCli(process.argv.slice(2));
