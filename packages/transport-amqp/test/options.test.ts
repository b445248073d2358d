import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseUrlOptions } from '@celeriac/core';
import { capabilitiesFor, createAmqpBroker } from '../src/index.js';
import { deathOf, H, userHeaders } from '../src/headers.js';
import { driverUrl, optionsFromUrl, resolveOptions } from '../src/options.js';

describe('options', () => {
  it('defaults to quorum work queues, classic delay queues and the celeriac prefix', () => {
    expect(resolveOptions({})).toEqual({
      queueType: 'quorum',
      delayQueueType: 'classic',
      prefix: 'celeriac',
      confirmWindow: 1000,
      connectTimeoutMs: 10_000,
      reconnectMaxDelayMs: 5_000,
      maxMessageBytes: 16 * 1024 * 1024,
    });
  });

  it('reads its options from the URL and passes the rest to amqplib', () => {
    const url = new URL('amqp://u:p@host:5672/vh?queueType=classic&prefix=app&confirmWindow=200&heartbeat=10');
    const o = optionsFromUrl(parseUrlOptions(url));
    expect(o).toEqual({ queueType: 'classic', prefix: 'app', confirmWindow: 200 });
    expect(driverUrl(url)).toBe('amqp://u:p@host:5672/vh?heartbeat=10');
    const broker = createAmqpBroker(url, parseUrlOptions(url), {});
    expect(broker.capabilities.priorities).toBe(10);
    expect(broker.names.work('default')).toBe('app.default');
    expect(broker.visibilityTimeoutMs).toBeUndefined();
  });

  it('refuses bad values and visibilityTimeoutMs, which RabbitMQ cannot honour', () => {
    expect(() => resolveOptions({ queueType: 'stream' as never })).toThrow(TypeError);
    expect(() => resolveOptions({ confirmWindow: 0 })).toThrow(RangeError);
    expect(() => resolveOptions({ prefix: 'a:b' })).toThrow(TypeError);
    expect(() => optionsFromUrl({ confirmWindow: 'many' })).toThrow(TypeError);
    expect(() => optionsFromUrl({ visibilityTimeoutMs: 5000 })).toThrow(/consumer_timeout/);
  });

  it('documents exactly these capabilities in the README table', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const table = readme.split('<!-- capability-table')[1]!.split('<!-- /capability-table -->')[0]!;
    const rows = table
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| capability'))
      .map((l) => l.split('|').map((c) => c.trim()).filter((c) => c !== ''));
    const quorum = capabilitiesFor('quorum') as unknown as Record<string, unknown>;
    const classic = capabilitiesFor('classic') as unknown as Record<string, unknown>;
    expect(rows.map((r) => r[0]).sort()).toEqual(Object.keys(quorum).sort());
    for (const [name, q, c] of rows) {
      expect(q).toBe(String(quorum[name!]));
      expect(c).toBe(String(classic[name!]));
    }
  });

  it('declares capabilities from the queue type', () => {
    expect(capabilitiesFor('quorum')).toMatchObject({ priorities: 0, redeliveryCount: true, broadcast: true, deadLetter: 'native' });
    expect(capabilitiesFor('classic')).toMatchObject({ priorities: 10, redeliveryCount: true, broadcast: true, deadLetter: 'native' });
  });
});

describe('headers', () => {
  it('strips the transport and broker headers and keeps every application value', () => {
    const raw = {
      s: 'x',
      n: -7,
      f: 1.5,
      b: false,
      nul: null,
      arr: ['a', 1, [true, null]],
      [H.deliveries]: 3,
      [H.reason]: 'bad',
      'x-death': [{ count: 1 }],
      'x-delivery-count': 2,
      'x-first-death-reason': 'expired',
    };
    expect(userHeaders(raw)).toEqual({ s: 'x', n: -7, f: 1.5, b: false, nul: null, arr: ['a', 1, [true, null]] });
  });

  it('maps field-table values other clients may send to the closest header value', () => {
    const raw = { bytes: Buffer.from('hi'), ts: { '!': 'timestamp', value: 1700000000 }, table: { a: 1 } };
    expect(userHeaders(raw)).toEqual({ bytes: 'hi', ts: 1700000000, table: '{"a":1}' });
  });

  it('reads the reason of a dead letter from our header, else from RabbitMQ', () => {
    expect(deathOf({ [H.reason]: 'ERR_X: no', [H.deadAt]: 5 })).toEqual({ reason: 'ERR_X: no', deadAt: 5 });
    expect(deathOf({ 'x-first-death-reason': 'expired', 'x-death': [{ time: { '!': 'timestamp', value: 10 } }] })).toEqual({
      reason: 'rabbitmq: expired',
      deadAt: 10_000,
    });
  });
});
