#!/usr/bin/env node
/**
 * The `celeriac` command. `celeriac --help` lists the commands; see program.ts.
 * Exits explicitly: a worker's app module may leave handles open that would keep the process alive.
 */
import { runCli } from './program.js';

process.exit(await runCli(process.argv.slice(2)));
