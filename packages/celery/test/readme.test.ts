import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KombuRedisBroker } from '../src/kombu-redis-broker.js';

/** The README capability table is checked against the code, so the two cannot drift apart. */
describe('README', () => {
  it('states the capabilities the kombu Redis broker declares', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- capabilities:start[^>]*-->([\s\S]*?)<!-- capabilities:end -->/.exec(readme)?.[1] ?? '';
    const rows = new Map(
      [...block.matchAll(/^\| (\w+) \| ([^|]+?) \|$/gm)].filter((m) => m[1] !== 'capability').map((m) => [m[1]!, m[2]!]),
    );
    const broker = new KombuRedisBroker();
    const caps = broker.capabilities;
    for (const [name, value] of Object.entries(caps)) expect(rows.get(name)?.split(' ')[0], name).toBe(String(value));
    expect([...rows.keys()].sort()).toEqual(Object.keys(caps).sort());
    await broker.close();
  });
});
