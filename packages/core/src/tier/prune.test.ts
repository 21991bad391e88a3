import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLayoutStore } from '@task-cache/oci';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../errors.js';
import { type CacheEvent, createCache } from '../index.js';
import { DEFAULT_MAX_AGE_MS, DEFAULT_MAX_SIZE, parseDuration, parseSize, resolveBounds } from './bounds.js';

const KiB = 1024;
let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'tc-prune-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A task whose build writes `size` random bytes to dist/out.bin (incompressible, no shared chunks). */
async function task(name: string) {
  const dir = join(work, 'projects', name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src', 'in.txt'), name);
  return { task: name, dir, sources: ['src/**'], generates: ['dist/**'] };
}
const writeOutput = (dir: string, size: number) => async () => {
  await mkdir(join(dir, 'dist'), { recursive: true });
  await writeFile(join(dir, 'dist', 'out.bin'), randomBytes(size));
};

async function layoutTags(layout: string): Promise<string[]> {
  const out: string[] = [];
  for await (const t of createLayoutStore(layout).listTags()) out.push(t);
  return out.filter((t) => !t.endsWith('.latest'));
}

async function blobBytes(layout: string): Promise<number> {
  const dir = join(layout, 'blobs', 'sha256');
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

describe('bounds', () => {
  it('parses sizes and durations with units, and "off"', () => {
    expect(parseSize('5GB')).toBe(5 * 1024 ** 3);
    expect(parseSize('512 MiB')).toBe(512 * 1024 ** 2);
    expect(parseSize('1048576')).toBe(1048576);
    expect(parseSize('off')).toBe(Number.POSITIVE_INFINITY);
    expect(parseDuration('14d')).toBe(14 * 86_400_000);
    expect(parseDuration('90m')).toBe(90 * 60_000);
    expect(() => parseSize('5 parsecs', 'TASK_CACHE_MAX_SIZE')).toThrow(/TASK_CACHE_MAX_SIZE/);
    expect(() => parseDuration('-1d')).toThrow(InvalidOptionError);
  });

  it('takes the option, else the environment, else the default', () => {
    expect(resolveBounds({}, {})).toMatchObject({ maxSize: DEFAULT_MAX_SIZE, maxAgeMs: DEFAULT_MAX_AGE_MS });
    const env = { TASK_CACHE_MAX_SIZE: '64MB', TASK_CACHE_MAX_AGE: '2h' };
    expect(resolveBounds({}, env)).toMatchObject({ maxSize: 64 * 1024 ** 2, maxAgeMs: 7_200_000 });
    expect(resolveBounds({ maxSize: 10, maxAge: 20 }, env)).toMatchObject({ maxSize: 10, maxAgeMs: 20 });
    expect(() => createCache({ env: { TASK_CACHE_MAX_AGE: 'soon' } })).toThrow(/TASK_CACHE_MAX_AGE/);
    expect(() => createCache({ maxSize: -1 })).toThrow(InvalidOptionError);
  });
});

describe('the bounded local store', () => {
  it('a size cap keeps the most recently used entries (a restore counts as a use) and they restore', async () => {
    const layout = join(work, 'layout');
    const events: CacheEvent[] = [];
    const options = {
      store: `oci-layout:${layout}`,
      stateDir: join(work, 'state'),
      maxSize: 200 * KiB,
      pruneIntervalMs: 0,
      onEvent: (e: CacheEvent) => events.push(e),
    };
    const tasks = [];
    for (const name of ['t1', 't2', 't3']) {
      const t = await task(name);
      tasks.push(t);
      const cache = createCache(options);
      expect((await cache.run(t, writeOutput(t.dir, 80 * KiB))).status).toBe('saved');
      await cache.close(); // waits for the background prune
    }
    const cache = createCache(options);
    // 3 × 80 KiB > 200 KiB: t1, the least recently used, is gone.
    expect(await layoutTags(layout)).toHaveLength(2);
    // t2 is used (restored) now, so t3 is the least recently used when t4 comes.
    await rm(join(tasks[1]!.dir, 'dist'), { recursive: true });
    expect((await cache.run(tasks[1]!, () => Promise.reject(new Error('must restore')))).status).toBe(
      'restored',
    );
    const t4 = await task('t4');
    expect((await cache.run(t4, writeOutput(t4.dir, 80 * KiB))).status).toBe('saved');
    await cache.close();
    const kept = await layoutTags(layout);
    expect(kept.map((k) => k.split('-')[0]).sort()).toEqual(['t2', 't4']);
    expect(await blobBytes(layout)).toBeLessThanOrEqual(200 * KiB);
    // Every survivor restores.
    const again = createCache(options);
    for (const t of [tasks[1]!, t4]) {
      await rm(join(t.dir, 'dist'), { recursive: true });
      const r = await again.run(t, () => Promise.reject(new Error('must restore')));
      expect(r.status).toBe('restored');
    }
    await again.close();
    expect(events.filter((e) => e.type === 'warning')).toEqual([]);
  });

  it('a pending prune does not hold back the result of the run that scheduled it', async () => {
    const layout = join(work, 'layout');
    const options = {
      store: `oci-layout:${layout}`,
      stateDir: join(work, 'state'),
      maxAge: 60_000,
      pruneIntervalMs: 0,
    };
    const old = await task('old');
    const first = createCache(options);
    await first.run(old, writeOutput(old.dir, KiB));
    await first.close();
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const tag of await readdir(join(layout, 'access')))
      await utimes(join(layout, 'access', tag), hourAgo, hourAgo);
    const lock = join(layout, 'index.json.lock');
    const cache = createCache({
      ...options,
      onEvent: (e) => {
        // The save is committed: another process takes the layout's lock, so the prune must wait.
        if (e.type === 'saved')
          writeFileSync(
            lock,
            JSON.stringify({
              token: 'x',
              pid: process.pid,
              host: hostname(),
              createdAt: Date.now(),
              ttlMs: 60_000,
            }),
          );
      },
    });
    const t = await task('new');
    const result = await cache.run(t, writeOutput(t.dir, KiB));
    expect(result.status).toBe('saved');
    // The result came back while the prune waits for the lock: nothing pruned yet.
    expect((await layoutTags(layout)).some((k) => k.startsWith('old-'))).toBe(true);
    await unlink(lock);
    await cache.close();
    // The entry unused for an hour went; the new one stays.
    expect((await layoutTags(layout)).map((k) => k.split('-')[0])).toEqual(['new']);
  });

  it('cache.prune({ dryRun }) reports and removes nothing; prune() removes entries and old state files', async () => {
    const layout = join(work, 'layout');
    const stateDir = join(work, 'state');
    const options = { store: `oci-layout:${layout}`, stateDir, pruneIntervalMs: 3_600_000 };
    const cache = createCache(options);
    for (const name of ['a', 'b']) {
      const t = await task(name);
      await cache.run(t, writeOutput(t.dir, 4 * KiB));
    }
    const [a] = (await layoutTags(layout)).filter((k) => k.startsWith('a-'));
    const dayAgo = new Date(Date.now() - 2 * 86_400_000);
    for (const tag of await readdir(join(layout, 'access')))
      if (tag.startsWith('a')) await utimes(join(layout, 'access', tag), dayAgo, dayAgo);
    // An abandoned lock file and a stale remembered base.
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    await writeFile(join(stateDir, 'locks', 'gone.lock'), '{}');
    await utimes(join(stateDir, 'locks', 'gone.lock'), dayAgo, dayAgo);
    const bases = await readdir(join(stateDir, 'bases'));
    expect(bases.length).toBeGreaterThan(0);
    await utimes(join(stateDir, 'bases', bases[0]!), dayAgo, dayAgo);
    await cache.close();

    const tool = createCache({ ...options, maxAge: 86_400_000 });
    const dry = await tool.prune({ dryRun: true });
    expect(dry).toMatchObject({ supported: true, dryRun: true, removedStateFiles: 2 });
    expect(dry.removedTags.filter((t) => !t.endsWith('.latest'))).toEqual([a]);
    expect(await layoutTags(layout)).toHaveLength(2);
    expect(existsSync(join(stateDir, 'locks', 'gone.lock'))).toBe(true);

    const done = await tool.prune();
    expect(done.removedTags).toEqual(dry.removedTags);
    expect(done.removedBlobs).toBeGreaterThan(0);
    expect(done.freedBytes).toBeGreaterThan(4 * KiB);
    expect(done.removedStateFiles).toBe(2);
    expect((await layoutTags(layout)).map((k) => k.split('-')[0])).toEqual(['b']);
    expect(existsSync(join(stateDir, 'locks', 'gone.lock'))).toBe(false);
    await tool.close();

    // A store that cannot be pruned is left alone.
    const memory = createCache({ store: 'memory://prune-test', stateDir });
    expect(await memory.prune()).toMatchObject({ supported: false, removedTags: [] });
    await memory.close();
  });
});
