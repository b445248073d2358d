import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTcpProxy, viaPort, type TcpProxy } from '@celeriac/test-servers';

/** An echo server that counts the connections it accepted and keeps the open ones. */
let echo: Server;
let echoPort: number;
let accepted: number;
const serverSide = new Set<Socket>();
let proxy: TcpProxy;

beforeEach(async () => {
  accepted = 0;
  echo = createServer((s) => {
    accepted++;
    serverSide.add(s);
    s.on('close', () => serverSide.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const addr = echo.address();
  echoPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
  proxy = await startTcpProxy('127.0.0.1', echoPort);
});

afterEach(async () => {
  await proxy.close();
  for (const s of serverSide) s.destroy();
  await new Promise<void>((r) => echo.close(() => r()));
});

/** Connect through the proxy; resolves the socket and a promise of its close. */
async function client(port = proxy.port): Promise<{ socket: Socket; closed: Promise<void>; roundTrip(text: string): Promise<string> }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const roundTrip = (text: string): Promise<string> =>
    new Promise((resolve) => {
      socket.once('data', (d: Buffer) => resolve(d.toString()));
      socket.write(text);
    });
  return { socket, closed, roundTrip };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 200) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('TCP proxy', () => {
  it('pipes bytes both ways and counts its connections', async () => {
    const a = await client();
    expect(await a.roundTrip('ping')).toBe('ping');
    expect(proxy.connections()).toBe(1);
    expect(accepted).toBe(1);
    a.socket.end();
    await a.closed;
    await until(() => proxy.connections() === 0, 'the pair to be dropped');
  });

  it('cut() drops every open connection on both sides; new connections still pass', async () => {
    const a = await client();
    const b = await client();
    expect(await a.roundTrip('x')).toBe('x');
    expect(await b.roundTrip('y')).toBe('y');
    expect(serverSide.size).toBe(2);
    proxy.cut();
    await Promise.all([a.closed, b.closed]);
    await until(() => serverSide.size === 0, 'the server side to close');
    expect(proxy.connections()).toBe(0);
    const c = await client();
    expect(await c.roundTrip('again')).toBe('again');
    c.socket.destroy();
  });

  it('refuse() closes new connections before they reach the server, resume() lets them through again', async () => {
    proxy.refuse();
    const a = await client();
    a.socket.write('lost');
    await a.closed;
    expect(accepted).toBe(0);
    proxy.resume();
    const b = await client();
    expect(await b.roundTrip('back')).toBe('back');
    expect(accepted).toBe(1);
    b.socket.destroy();
  });

  it('close() cuts, stops listening and is idempotent', async () => {
    const a = await client();
    expect(await a.roundTrip('z')).toBe('z');
    const closing = proxy.close();
    expect(proxy.close()).toBe(closing);
    await closing;
    await a.closed;
    const err = await client().catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('urlFor / viaPort point a URL at the proxy, keeping user, path and query', () => {
    expect(proxy.urlFor('amqp://ada:pw@rabbit.example:5672/vh?heartbeat=5')).toBe(`amqp://ada:pw@127.0.0.1:${proxy.port}/vh?heartbeat=5`);
    expect(viaPort('redis://10.0.0.1:6379/2', 7000)).toBe('redis://127.0.0.1:7000/2');
  });
});
