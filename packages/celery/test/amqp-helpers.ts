import { connect } from 'amqplib';
import { serverUrl } from '@celeriac/test-servers';
import { LEVELS } from '../src/amqp-delay.js';

/**
 * Delete what a test file created on RabbitMQ: its queues (with their dead-letter queues and Celery's
 * per-queue exchange), the delay levels and the broadcast exchange under `prefix`.
 */
export async function deleteAmqp(prefix: string, queues: readonly string[]): Promise<void> {
  const conn = await connect(serverUrl('amqp'));
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    for (const q of queues) {
      await ch.deleteQueue(q);
      await ch.deleteQueue(`${prefix}.dead.${q}`);
      await ch.deleteExchange(q);
    }
    for (let k = 0; k < LEVELS; k++) {
      await ch.deleteQueue(`${prefix}.delay.${k}`);
      await ch.deleteExchange(`${prefix}.delay.${k}`);
    }
    await ch.deleteExchange(`${prefix}.delay.out`);
    await ch.deleteExchange(`${prefix}.broadcast`);
    await ch.close();
  } finally {
    await conn.close();
  }
}

export async function deleteExchange(name: string): Promise<void> {
  const conn = await connect(serverUrl('amqp'));
  try {
    const ch = await conn.createChannel();
    await ch.deleteExchange(name);
    await ch.close();
  } finally {
    await conn.close();
  }
}
