import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { requireBuiltCli, spawnCli, runCli } from '../src/spawn.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('celeriac beat', () => {
  requireBuiltCli();

  it('sends the schedules the app module exports until SIGINT, then releases the lease and exits 0', async () => {
    const beat = spawnCli(['beat', '-A', fixture('app-beat.mjs')]);
    await beat.waitFor(/1 static schedule\(s\): tick; runtime schedules from the memory result backend; leader/);
    await new Promise((r) => setTimeout(r, 700));
    beat.child.kill('SIGINT');
    const exit = await beat.exited;
    expect(exit.code).toBe(0);
    const sent = /sent (\d+) tick\(s\); closed/.exec(beat.stdout());
    expect(Number(sent?.[1])).toBeGreaterThanOrEqual(2);
  });

  it('without static schedules it runs for the runtime ones, and stops on SIGTERM', async () => {
    const beat = spawnCli(['beat', '-A', fixture('app-basic.mjs')]);
    await beat.waitFor(/0 static schedule\(s\); runtime schedules from the memory result backend; leader/);
    beat.child.kill('SIGTERM');
    expect((await beat.exited).code).toBe(0);
  });

  it('says what is missing when there is nothing to send: no static schedules and no store for runtime ones', async () => {
    // No result backend: BROKER_URL names a broker that is never reached.
    const r = await runCli(['beat', '-A', fixture('app-inspect.mjs')], { env: { BROKER_URL: 'redis://127.0.0.1:1', RESULT_BACKEND_URL: undefined } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nothing to send: .* exports no schedules .* and the app has no result backend/);
  });

  it('beat --help says where static and runtime schedules come from', async () => {
    const r = await runCli(['beat', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--sync-ms <ms>');
    expect(r.stdout).toContain('app.schedules.upsert()');
  });
});
