import { createBullmqDriver } from './driver-bullmq.js';
import { createCeleriacDriver } from './driver-celeriac.js';
import { createGraphileWorkerDriver } from './driver-graphile-worker.js';
import { createPgBossDriver } from './driver-pg-boss.js';
import { createRawAmqpDriver } from './driver-raw-amqp.js';
import { createRawNatsDriver } from './driver-raw-nats.js';
import { createRawRedisDriver } from './driver-raw-redis.js';
import type { Driver } from './driver.js';
import type { RowSpec } from './record.js';

/** The driver for a row: celeriac on any transport, BullMQ on Redis, pg-boss and graphile-worker on PostgreSQL, or a raw client floor. */
export async function createDriver(spec: RowSpec): Promise<Driver> {
  switch (spec.system) {
    case 'celeriac':
      return createCeleriacDriver(spec);
    case 'bullmq':
      if (spec.transport !== 'redis') throw new TypeError('BullMQ runs on Redis only');
      return createBullmqDriver(spec);
    case 'pg-boss':
      if (spec.transport !== 'postgres') throw new TypeError('pg-boss runs on PostgreSQL only');
      return createPgBossDriver(spec);
    case 'graphile-worker':
      if (spec.transport !== 'postgres') throw new TypeError('graphile-worker runs on PostgreSQL only');
      return createGraphileWorkerDriver(spec);
    case 'raw':
      switch (spec.transport) {
        case 'redis':
          return createRawRedisDriver(spec);
        case 'amqp':
          return createRawAmqpDriver(spec, spec.amqpQueueType);
        case 'nats':
          return createRawNatsDriver(spec);
        case 'memory':
          throw new TypeError('the memory broker has no raw client floor');
        case 'postgres':
          throw new TypeError('PostgreSQL rows compare with pg-boss and graphile-worker, not a raw floor');
      }
  }
}
