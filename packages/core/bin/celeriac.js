#!/usr/bin/env node
// The `celeriac` bin. npm links bins when it installs, before a workspace checkout has built anything,
// and skips a bin whose file does not exist yet; this committed file always exists and loads the built CLI.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('celeriac: error: the CLI is not built yet; run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);
