import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RedisBroker } from '../src/index.js';

/** The README capability table is generated from the code: this keeps them from drifting apart. */
describe('README', () => {
  it('states the capabilities the broker declares', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- capabilities:start[^>]*-->([\s\S]*?)<!-- capabilities:end -->/.exec(readme)?.[1] ?? '';
    const rows = new Map(
      [...block.matchAll(/^\| (\w+) \| ([^|]+?) \|$/gm)].filter((m) => m[1] !== 'capability').map((m) => [m[1]!, m[2]!]),
    );
    const caps = new RedisBroker().capabilities;
    for (const [name, value] of Object.entries(caps)) {
      expect(rows.get(name)?.split(' ')[0], name).toBe(String(value));
    }
    expect([...rows.keys()].sort()).toEqual(Object.keys(caps).sort());
  });
});
