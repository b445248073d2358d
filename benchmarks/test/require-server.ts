import { isAnswering, redact, serverUrl } from '../src/servers.js';
import type { ServerKind } from '../src/record.js';

/**
 * Whether the bench's integration tests of `kind` should run: a missing server skips them with one
 * clear line locally and fails under CI=true. The bench is published, so it keeps its own discovery
 * (src/servers.ts) and does not depend on the private test-server package.
 */
export async function requireServer(kind: ServerKind): Promise<boolean> {
  if (await isAnswering(kind)) return true;
  const line = `${kind} is not answering at ${redact(serverUrl(kind))}`;
  if (process.env['CI'] === 'true') throw new Error(`${line}; CI must start it (see DESIGN.md §8)`);
  process.stderr.write(`skipping ${kind} bench integration tests: ${line}\n`);
  return false;
}
