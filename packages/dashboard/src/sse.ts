import type { ServerResponse } from 'node:http';

/**
 * The open Server-Sent-Events streams. A slow client is not waited for: when its socket buffer is
 * over `maxBufferedBytes` it is dropped (the browser reconnects and gets a fresh snapshot), so one
 * stuck tab cannot make the dashboard hold an unbounded backlog.
 */
export class SseHub {
  private readonly clients = new Set<ServerResponse>();

  constructor(private readonly maxBufferedBytes = 16 * 1024 * 1024) {}

  get size(): number {
    return this.clients.size;
  }

  /** Start the stream on `res` and send it `first` (its snapshot). */
  add(res: ServerResponse, headers: Record<string, string>, first: { event: string; data: unknown }): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    this.write(res, frame(first.event, first.data));
  }

  send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const text = frame(event, data);
    for (const res of this.clients) this.write(res, text);
  }

  /** A comment line keeps proxies from closing an idle stream. */
  ping(): void {
    for (const res of this.clients) this.write(res, ': ping\n\n');
  }

  closeAll(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private write(res: ServerResponse, text: string): void {
    if (res.writableLength > this.maxBufferedBytes) {
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(text);
  }
}

function frame(event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so the payload is one `data:` line.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
