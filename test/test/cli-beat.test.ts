import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { requireBuiltCli, spawnCli, runCli } from '../src/spawn.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('celeriac beat', () => {
  requireBuiltCli();

  it('sends the schedules the app module exports until SIGINT, then releases the lease and exits 0', async () => {
    const beat = spawnCli(['beat', '-A', fixture('app-beat.mjs')]);
    await beat.waitFor(/1 schedule\(s\): tick; leader/);
    await new Promise((r) => setTimeout(r, 700));
    beat.child.kill('SIGINT');
    const exit = await beat.exited;
    expect(exit.code).toBe(0);
    const sent = /sent (\d+) tick\(s\); closed/.exec(beat.stdout());
    expect(Number(sent?.[1])).toBeGreaterThanOrEqual(2);
  });

  it('says what is missing when the module exports no schedules', async () => {
    const r = await runCli(['beat', '-A', fixture('app-basic.mjs')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exports no schedules/);
  });
});
