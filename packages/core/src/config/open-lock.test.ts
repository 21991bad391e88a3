import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChild as runProcess } from '../../test/helpers.js';
import { openLock } from './open.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/fixtures/default-run-child.ts', import.meta.url));

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tc-open-lock-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Runs the child (tsx, from the repository root so the workspace paths resolve) with its own HOME. */
async function runChild(mode: string, name: string): Promise<{ status: string; loaded: string[] }> {
  const base = join(work, name);
  const env = {
    ...process.env,
    TASK_CACHE_DIR: join(base, 'cache'),
    HOME: join(base, 'home'),
    XDG_CACHE_HOME: join(base, 'home', '.cache'),
  };
  const { code, err, lastLine } = await runProcess(
    process.execPath,
    ['--import', 'tsx', CHILD, mode, join(base, 'project')],
    { cwd: ROOT, env },
  );
  expect(code, err).toBe(0);
  return JSON.parse(lastLine) as { status: string; loaded: string[] };
}

describe('openLock', () => {
  // Regression (issue 13): the default local lock imported @task-cache/redis-lock, whose index
  // re-exported the Redis backend, so every run loaded ioredis (41 modules) and every user installed it.
  it('a default createCache().run() loads no module of ioredis', async () => {
    const result = await runChild('default', 'default');
    expect(result.status).toBe('saved');
    expect(result.loaded).toEqual([]);
    // The run used the embedded default store and the local lock files of its own cache directory.
    expect(await readdir(join(work, 'default', 'cache'))).toContain('locks');
  });

  it('…and the check does see ioredis when the Redis subpath is imported (the control)', async () => {
    const result = await runChild('import-redis', 'control');
    expect(result.status).toBe('saved');
    expect(result.loaded.some((path) => /[\\/]ioredis[\\/]/.test(path))).toBe(true);
  });

  it('local and empty URLs open the lock-file lock in <cache dir>/locks', async () => {
    const env = { TASK_CACHE_DIR: join(work, 'direct') };
    for (const url of ['', 'local:', { kind: 'local' } as const]) {
      const { lock, key } = await openLock(url, { env });
      expect(key).toBeUndefined();
      const outcome = await lock.acquireOrWait('k');
      expect(outcome.kind).toBe('acquired');
      if (outcome.kind === 'acquired') expect(await outcome.lease.release()).toBe(true);
      await lock.close();
    }
    expect((await readdir(join(work, 'direct', 'locks'))).some((f) => f.endsWith('.fence'))).toBe(true);
  });

  it('a redis:// URL opens the Redis lock with the key of its path (an unreachable server is no error)', async () => {
    const { lock, key } = await openLock('redis://:pw@127.0.0.1:1/lock:from-url');
    expect(key).toBe('lock:from-url');
    expect((await lock.acquireOrWait('k')).kind).toBe('unavailable');
    await lock.close();
  });
});
