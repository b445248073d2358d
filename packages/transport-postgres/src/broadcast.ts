import { CeleriacError, ErrorCode, type Broadcast, type Logger } from '@celeriac/core';
import type { Database } from './database.js';
import { channelName, ChannelKind } from './sql.js';

/**
 * NOTIFY payloads must be shorter than 8000 bytes. Bodies whose payload would not fit are stored in
 * `<schema>.broadcast` and the notification carries the row id.
 */
export const MAX_INLINE_PAYLOAD_BYTES = 7_900;
/** How long a spilled body stays readable for subscribers (then the cleanup deletes it). */
export const SPILL_TTL_MS = 300_000;

/**
 * The payload of a broadcast: `t` + the body when it is printable ASCII (JSON events usually are;
 * ASCII passes any server encoding), else `b` + base64, or `s` + the id of a spilled row.
 */
export function inlinePayload(body: Uint8Array): string | undefined {
  let ascii = body.byteLength + 1 <= MAX_INLINE_PAYLOAD_BYTES;
  if (ascii) {
    for (let i = 0; i < body.byteLength; i++) {
      const c = body[i]!;
      if (c === 0 || c > 0x7e) {
        ascii = false;
        break;
      }
    }
  }
  if (ascii) return `t${Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1')}`;
  if (Math.ceil(body.byteLength / 3) * 4 + 1 <= MAX_INLINE_PAYLOAD_BYTES) {
    return `b${Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64')}`;
  }
  return undefined;
}

/**
 * Broadcast over NOTIFY on the broker's LISTEN connection: fire-and-forget to every subscriber that
 * is listening when the publish commits (nothing is kept for later subscribers, nor delivered while
 * a subscriber's connection is down). Bodies up to ~7.9 kB (ASCII) or ~5.9 kB (other bytes) ride in the
 * payload; larger ones, up to `maxBytes`, are stored for five minutes and fetched by id.
 * Each subscription gets its messages in publish order.
 */
export class PgBroadcast implements Broadcast {
  private readonly publishSql: string;
  private readonly spillSql: string;
  private readonly readSql: string;

  constructor(
    private readonly db: Database,
    private readonly maxBytes: number,
    private readonly logger: Logger,
  ) {
    const s = db.s;
    this.publishSql = 'SELECT pg_notify($1, $2)';
    this.spillSql = `WITH ins AS (
  INSERT INTO ${s}.broadcast (body, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond') RETURNING id
) SELECT pg_notify($3, 's' || id) FROM ins`;
    this.readSql = `SELECT body FROM ${s}.broadcast WHERE id = $1`;
  }

  private channel(name: string): string {
    return channelName(this.db.schema, ChannelKind.BROADCAST, name);
  }

  /** Resolves once the NOTIFY (and a spilled body) committed. Refuses bodies over the broker's `maxMessageBytes`. */
  async publish(channel: string, body: Uint8Array): Promise<void> {
    this.db.check();
    if (body.byteLength > this.maxBytes) {
      throw new CeleriacError(ErrorCode.PAYLOAD_TOO_LARGE, `broadcast of ${body.byteLength} bytes is over the limit of ${this.maxBytes} bytes`);
    }
    const ch = this.channel(channel);
    const inline = inlinePayload(body);
    if (inline !== undefined) await this.db.query(this.publishSql, [ch, inline]);
    else await this.db.query(this.spillSql, [Buffer.from(body.buffer, body.byteOffset, body.byteLength), SPILL_TTL_MS, ch]);
  }

  /** Resolves once the server LISTENs for this channel; the returned function unsubscribes (idempotent). */
  async subscribe(channel: string, onMessage: (body: Uint8Array) => void): Promise<() => Promise<void>> {
    this.db.check();
    // Spilled bodies are read from the table: chain every message so each arrives in order.
    let chain: Promise<void> = Promise.resolve();
    let removed = false;
    const deliver = (body: Uint8Array) => {
      if (removed) return;
      try {
        onMessage(body);
      } catch (err) {
        this.logger.warn('broadcast subscriber threw', { error: String(err) });
      }
    };
    const handle = this.db.listener.listen(this.channel(channel), (payload) => {
      chain = chain.then(async () => {
        const body = await this.decode(payload);
        if (body !== undefined) deliver(body);
      });
    });
    try {
      await handle.ready;
    } catch (err) {
      handle.remove();
      throw err;
    }
    return () => {
      removed = true;
      handle.remove();
      return Promise.resolve();
    };
  }

  private async decode(payload: string): Promise<Uint8Array | undefined> {
    switch (payload[0]) {
      case 't':
        return Buffer.from(payload.slice(1), 'latin1');
      case 'b':
        return Buffer.from(payload.slice(1), 'base64');
      case 's':
        try {
          const rows = await this.db.query<{ body: Buffer }>(this.readSql, [payload.slice(1)]);
          return rows[0]?.body;
        } catch (err) {
          this.logger.warn('could not read a spilled broadcast', { error: String(err) });
          return undefined;
        }
      default:
        return undefined;
    }
  }
}
