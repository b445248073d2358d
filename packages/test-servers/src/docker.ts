import { execFile } from 'node:child_process';

/** True when `docker info` exits 0 within `timeoutMs`: a Docker engine is reachable, not just the CLI. */
export function dockerEngineReachable(timeoutMs = 5_000): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('docker', ['info'], { timeout: timeoutMs }, (err) => resolve(err === null));
  });
}
