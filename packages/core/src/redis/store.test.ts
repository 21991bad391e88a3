import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Digest } from '@task-cache/oci';
import { type RedisFixture, startRedis } from '@task-cache/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../errors.js';
import type { CacheEvent } from '../events/types.js';
import { createCache } from '../run/cache.js';
import { createRedisStore } from './store.js';

// Integration tests against a real redis-server (testkit fixture): no mock of Redis.

let redis: RedisFixture;
// The caches of this file remember their bases here, never under HOME.
let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'tc-redis-state-'));
  redis = await startRedis({ maxmemory: '64mb' });
});
afterAll(async () => {
  await redis?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function project(content = 'x'.repeat(2000)) {
  const dir = await mkdtemp(join(tmpdir(), 'tc-redis-'));
  dirs.push(dir);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src/in.txt'), content);
  return dir;
}
const build = (dir: string, size = 5000) =>
  Object.assign(
    async () => {
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist/out.bin'), Buffer.alloc(size, dir));
    },
    { dir },
  );
const task = { task: 'small', sources: ['src/**'], generates: ['dist/**'] };

function cacheOn(url: string, events: CacheEvent[] = [], extra: Record<string, unknown> = {}) {
  const cache = createCache({ store: url, lock: false, stateDir, onEvent: (e) => events.push(e), ...extra });
  closers.push(() => cache.close());
  return cache;
}

describe('Redis entry store', () => {
  it('round trip through a redis:// store URL: save, then restore without building', async () => {
    const dir = await project();
    const cache = cacheOn(redis.url());
    const first = await cache.run({ ...task, dir }, build(dir));
    expect(first.status).toBe('saved');
    const tagKey = `task-cache:tag:${first.key}`;
    expect(await redis.command('EXISTS', tagKey)).toBe(1);
    await rm(join(dir, 'dist'), { recursive: true });
    let called = 0;
    const second = await cache.run({ ...task, dir }, () => {
      called++;
    });
    expect(second.status).toBe('restored');
    expect(called).toBe(0);
    expect(await readFile(join(dir, 'dist/out.bin'))).toEqual(Buffer.alloc(5000, dir));
  });

  it('hands out verified bytes only: a tampered blob fails the restore (warning) and the build runs', async () => {
    const dir = await project('tamper');
    const events: CacheEvent[] = [];
    const cache = cacheOn(redis.url(), events);
    const first = await cache.run({ ...task, dir }, build(dir));
    const store = createRedisStore({ url: redis.url() });
    closers.push(() => store.close());
    const manifest = await store.fetchManifest(first.key);
    const layers = JSON.parse(Buffer.from(manifest!.bytes).toString()).layers as Array<{ digest: string }>;
    for (const layer of layers) await redis.command('SET', `task-cache:blob:${layer.digest}`, 'garbage');
    await rm(join(dir, 'dist'), { recursive: true });
    let built = 0;
    const second = await cache.run({ ...task, dir }, async () => {
      built++;
      await build(dir)();
    });
    expect(built).toBe(1);
    expect(second.status).not.toBe('restored');
    expect(events.find((e) => e.type === 'warning')).toMatchObject({ code: 'RESTORE_FAILED' });
    // A push whose bytes do not match the descriptor is refused before it reaches Redis.
    const bad = new TextEncoder().encode('not the blob');
    await expect(
      store.pushBlob(
        { mediaType: 'x', digest: sha256Digest(new Uint8Array([1])), size: bad.byteLength },
        bad,
      ),
    ).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
  });

  it('keys expire after ?ttl= and a hit refreshes the expiry', async () => {
    const dir = await project('ttl');
    const cache = cacheOn(`${redis.url()}?ttl=300`);
    const first = await cache.run({ ...task, dir }, build(dir));
    const tagKey = `task-cache:tag:${first.key}`;
    const ttl = (await redis.command('TTL', tagKey)) as number;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    // Shorten it, then hit: the hit puts it back to the configured TTL.
    await redis.command('EXPIRE', tagKey, 5);
    await rm(join(dir, 'dist'), { recursive: true });
    expect((await cache.run({ ...task, dir }, build(dir))).status).toBe('restored');
    const refreshed = (await redis.command('TTL', tagKey)) as number;
    expect(refreshed).toBeGreaterThan(5);

    // Expiry: with ?ttl=1 the entry is gone after it elapses, and the next run builds again.
    const dir2 = await project('ttl-short');
    const shortEvents: CacheEvent[] = [];
    const short = cacheOn(`${redis.url()}?ttl=1`, shortEvents);
    const saved = await short.run({ ...task, dir: dir2 }, build(dir2));
    expect(saved.status, JSON.stringify(shortEvents)).toBe('saved');
    const shortTag = `task-cache:tag:${saved.key}`;
    for (let i = 0; i < 100; i++) {
      const exists = await redis.command('EXISTS', shortTag);
      if (exists === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Outputs gone: with them in place the up-to-date stamp would skip the lookup (issue 14).
    await rm(join(dir2, 'dist'), { recursive: true });
    let built = 0;
    const again = await short.run({ ...task, dir: dir2 }, async () => {
      built++;
      await build(dir2)();
    });
    expect(built).toBe(1);
    expect(again.status, JSON.stringify(shortEvents)).toBe('saved');
  });

  it('size cap (default 1 MiB): a larger entry is not saved, with a warning; the build result stands', async () => {
    const dir = await project('big');
    const events: CacheEvent[] = [];
    const cache = cacheOn(redis.url(), events);
    const r = await cache.run({ ...task, dir }, build(dir, 3 * 1024 * 1024));
    expect(r).toMatchObject({ status: 'built', reason: 'entry-too-large' });
    expect(events.find((e) => e.type === 'warning')).toMatchObject({ code: 'ENTRY_TOO_LARGE' });
    expect((await readFile(join(dir, 'dist/out.bin'))).byteLength).toBe(3 * 1024 * 1024);
    expect(await redis.command('EXISTS', `task-cache:tag:${r.key}`)).toBe(0);
    // an explicit smaller cap on the store object
    const store = createRedisStore({ url: redis.url(), maxEntrySize: 100 });
    closers.push(() => store.close());
    const capped = createCache({ store, lock: false, stateDir });
    expect(await capped.run({ ...task, dir }, build(dir, 1000))).toMatchObject({ reason: 'entry-too-large' });
  });

  it('OOM on a noeviction Redis → warning, nothing saved, the build result stands', async () => {
    const dir = await project('oom');
    const events: CacheEvent[] = [];
    const cache = cacheOn(redis.url(), events);
    await redis.forceOom();
    try {
      const r = await cache.run({ ...task, dir }, build(dir));
      expect(r).toMatchObject({ status: 'built', reason: 'save-failed' });
      const w = events.find((e) => e.type === 'warning' && e.code === 'STORE_OUT_OF_MEMORY');
      expect(w).toBeDefined();
      expect((w as { message: string }).message).toMatch(/out of memory/);
      expect((w as { message: string }).message).not.toContain(redis.password!);
      expect((await readFile(join(dir, 'dist/out.bin'))).byteLength).toBe(5000);
    } finally {
      await redis.clearOom();
    }
  });

  it('Redis down → warning and the build runs; back up → the same cache saves again', async () => {
    const own = await startRedis();
    closers.push(() => own.stop());
    const dir = await project('down');
    const events: CacheEvent[] = [];
    const cache = cacheOn(own.url(), events, { circuitBreakerThreshold: 100 });
    await own.kill();
    const down = await cache.run({ ...task, dir }, build(dir));
    expect(down.status).toBe('built');
    expect(events.find((e) => e.type === 'warning')).toMatchObject({
      causeCode: 'CACHE_ERR_REDIS_UNAVAILABLE',
    });
    expect(JSON.stringify(events)).not.toContain(own.password!);
    await own.restart();
    const up = await cache.run({ ...task, dir }, build(dir));
    expect(up.status).toBe('saved');
  });

  it('validates options with typed errors', () => {
    expect(() => createRedisStore({})).toThrow(InvalidOptionError);
    expect(() => createRedisStore({})).toThrow(
      expect.objectContaining({ field: 'url', code: 'CACHE_ERR_INVALID_OPTION' }),
    );
    expect(() => createRedisStore({ url: 'http://x' })).toThrow(/redis:\/\//);
    expect(() => createRedisStore({ url: 'redis://h', ttlSeconds: 0 })).toThrow(/ttlSeconds/);
    expect(() => createRedisStore({ url: 'redis://h', maxEntrySize: -1 })).toThrow(/maxEntrySize/);
    expect(createRedisStore({ url: 'redis://:secret@h:1/0' }).location).toBe('redis://***:***@h:1/0');
  });
});
