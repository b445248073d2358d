import { createServer } from 'node:net';

/** Ports this process has handed out: the kernel may give a closed one out again. */
const handedOut = new Set<number>();

function probePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1 (bound and released; a server started right after gets it), and never
 * one this process handed out before: a test that asks for several ports before starting anything (a
 * cluster's route ports, then each node's client port) would otherwise sometimes get the same port
 * twice, and a node fails with "address already in use". Another process may still take the port in
 * between: start servers through `retryOnPortClash`.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await probePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** True when `err` (or its text) says a server could not bind its port because it is taken. */
export function isPortClash(err: unknown): boolean {
  return /address already in use|eaddrinuse/i.test(String(err));
}

/**
 * Run `start` again, up to `attempts` times in all, while it fails because a port `freePort()` gave was
 * taken by another process in between (see `isPortClash`). Any other error is thrown at once. `start`
 * must clean up after itself when it fails and ask for fresh ports each time.
 * @default attempts 3
 */
export async function retryOnPortClash<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (err) {
      if (i >= attempts || !isPortClash(err)) throw err;
    }
  }
}
