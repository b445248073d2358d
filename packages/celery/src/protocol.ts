import { parseUrlOptions, type Broker, type FactoryContext, type Protocol, type ResultBackend } from '@celeriac/core';
import { createCeleryAmqpBroker } from './celery-amqp-broker.js';
import { celeryCodec } from './celery-codec.js';
import { createCeleryRedisResultBackend } from './celery-result-backend.js';
import { createKombuRedisBroker } from './kombu-redis-broker.js';

function parse(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined; // core's resolver reports the bad URL
  }
}

/**
 * Celery 5's wire protocol: what `createApp({ protocol: 'celery' })` loads. Task messages are
 * protocol v2 ({@link celeryCodec}); `redis://` brokers speak kombu's Redis transport
 * ({@link KombuRedisBroker}), `amqp://` brokers publish as Celery does ({@link CeleryAmqpBroker});
 * `redis://` result backends store Celery's `celery-task-meta-*` ({@link CeleryRedisResultBackend}).
 * Other URLs (`memory://`) fall back to core's table.
 */
export const celeryProtocol: Protocol = {
  name: 'celery',
  defaultQueue: 'celery',
  codec: celeryCodec,
  resolveBroker(url: string, context: FactoryContext): Broker | undefined {
    const u = parse(url);
    if (u === undefined) return undefined;
    if (u.protocol === 'redis:' || u.protocol === 'rediss:') return createKombuRedisBroker(u, parseUrlOptions(u), context);
    if (u.protocol === 'amqp:' || u.protocol === 'amqps:') return createCeleryAmqpBroker(u, parseUrlOptions(u), context);
    return undefined;
  },
  resolveResultBackend(url: string, context: FactoryContext): ResultBackend | undefined {
    const u = parse(url);
    if (u === undefined) return undefined;
    if (u.protocol === 'redis:' || u.protocol === 'rediss:') return createCeleryRedisResultBackend(u, parseUrlOptions(u), context);
    return undefined;
  },
};
