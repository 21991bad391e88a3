import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockUnavailableError } from '@task-cache/lock';
import type { OciStore } from '@task-cache/oci';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfigError, CacheRunError } from '../config/errors.js';
import type { CacheEvent } from '../events/types.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import { createCache } from './cache.js';
import type { CacheLease, CacheLock, CacheOptions, CachePolicy, LockAcquireResult } from './types.js';

// Unit tests of the run's behaviour: the in-memory store and an in-memory fake lock (the real Redis
// lock and the real registry are exercised by run.integration.test.ts). Option validation, the
// breaker and the state directory have their own files (options, breaker, state .test.ts).

// Every cache of this file keeps its state (remembered bases) in a temp dir, never under HOME.
let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'tc-run-state-'));
});
afterAll(async () => {
  await rm(stateDir, { recursive: true, force: true });
});
const cacheOf = (options: CacheOptions = {}) => createCache({ stateDir, ...options });

const dirs: string[] = [];
async function project(files: Record<string, string> = { 'src/main.c': 'int main() { return 0; }\n' }) {
  const dir = await mkdtemp(join(tmpdir(), 'tc-run-'));
  dirs.push(dir);
  for (const [p, c] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), c);
  }
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A build writing dist/out.txt from src/main.c, counting its calls. */
function builder(content = 'built') {
  const b = Object.assign(
    async ({ signal }: { signal: AbortSignal }) => {
      b.calls += 1;
      signal.throwIfAborted();
      await mkdir(join(b.dir, 'dist'), { recursive: true });
      await writeFile(
        join(b.dir, 'dist/out.txt'),
        `${content}:${await readFile(join(b.dir, 'src/main.c'), 'utf8')}`,
      );
      return 'value';
    },
    { calls: 0, dir: '' },
  );
  return b;
}

interface FakeLease extends CacheLease {
  released?: string;
  lose(): void;
}
function fakeLock(script: Array<'acquired' | 'peer-finished' | 'timed-out' | 'unavailable'> = []) {
  const leases: FakeLease[] = [];
  const lock: CacheLock & { leases: FakeLease[]; keys: string[] } = {
    leases,
    keys: [],
    async acquireOrWait(key): Promise<LockAcquireResult> {
      lock.keys.push(key);
      const kind = script.shift() ?? 'acquired';
      if (kind !== 'acquired')
        return kind === 'unavailable'
          ? { kind, error: new LockUnavailableError('connection', 'connection refused') }
          : { kind };
      const ac = new AbortController();
      const lease: FakeLease = {
        key,
        signal: ac.signal,
        fence: leases.length + 1,
        isValid: () => !ac.signal.aborted && lease.released === undefined,
        async release(outcome = 'built') {
          lease.released ??= outcome;
          return true;
        },
        lose: () => ac.abort(new Error('lease lost')),
      };
      leases.push(lease);
      return { kind: 'acquired', lease };
    },
  };
  return lock;
}

const run = { task: 'build', sources: ['src/**'], generates: ['dist/**'] };

describe('cache.run with the memory store', () => {
  it('miss → build → save; hit → restore without calling the build (zero pushes)', async () => {
    const store = countingStore(createMemoryStore());
    const lock = fakeLock();
    const events: CacheEvent[] = [];
    const cache = cacheOf({ store, lock, onEvent: (e) => events.push(e) });
    const dir = await project();
    const build = Object.assign(builder(), { dir });

    const first = await cache.run({ ...run, dir }, build);
    expect(first).toMatchObject({ status: 'saved', value: 'value' });
    expect(first.key).toMatch(/^build-[0-9a-f]{64}$/);
    expect(build.calls).toBe(1);
    expect(lock.keys).toEqual([`lock:${first.key}`]);
    expect(lock.leases[0]?.released).toBe('built');
    expect(first.stats.chunksTotal).toBeGreaterThan(0);
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['lookup', 'miss', 'lock-acquired', 'saved']),
    );
    // The lookup repeated once the lock is held is not reported again: one lookup, one miss.
    expect(events.filter((e) => e.type === 'lookup')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'miss')).toHaveLength(1);

    await rm(join(dir, 'dist'), { recursive: true });
    store.resetCounts();
    const second = await cache.run({ ...run, dir }, build);
    expect(second).toMatchObject({ status: 'restored', key: first.key });
    expect(build.calls).toBe(1);
    expect(await readFile(join(dir, 'dist/out.txt'), 'utf8')).toBe('built:int main() { return 0; }\n');
    expect(store.counts.pushBlob + store.counts.pushManifest + store.counts.tag).toBe(0);
    expect(lock.keys).toHaveLength(1); // a hit takes no lock
    expect(events.at(-1)?.type).toBe('restored');
  });

  it('a custom policy (plain data + functions) can be unit-tested: zero pushes on a hit', async () => {
    // The example of the README: restore only on main, never save from forks.
    const policy: CachePolicy = {
      shouldRestore: ({ task }) => task !== 'deploy',
      shouldSave: ({ key }) => !key.startsWith('scratch-'),
      compressionLevel: 5,
    };
    const store = countingStore(createMemoryStore());
    const cache = cacheOf({ store, lock: false, ...policy });
    const dir = await project();
    const build = Object.assign(builder(), { dir });
    await cache.run({ ...run, dir }, build);
    store.resetCounts();
    const hit = await cache.run({ ...run, dir }, build);
    expect(hit.status).toBe('restored');
    expect(store.counts.pushBlob).toBe(0);
    expect(store.counts.pushManifest).toBe(0);
    expect(store.counts.tag).toBe(0);
    const scratch = await cache.run({ ...run, dir, key: 'scratch-1' }, build);
    expect(scratch).toMatchObject({ status: 'built', reason: 'policy' });
  });

  it('a failing build rejects with its own error, unchanged, saves nothing and releases `failed`', async () => {
    const store = countingStore(createMemoryStore());
    const lock = fakeLock();
    const cache = cacheOf({ store, lock });
    const dir = await project();
    const boom = new TypeError('compiler exploded');
    await expect(
      cache.run({ ...run, dir }, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(lock.leases[0]?.released).toBe('failed');
    expect(store.counts.tag).toBe(0);
  });

  it('missing declared outputs → nothing saved, a warning naming them, status built', async () => {
    const store = countingStore(createMemoryStore());
    const lock = fakeLock();
    const events: CacheEvent[] = [];
    const cache = cacheOf({ store, lock, onEvent: (e) => events.push(e) });
    const dir = await project();
    const build = Object.assign(builder(), { dir });
    const r = await cache.run({ ...run, dir, generates: ['dist/**', 'docs/**'] }, build);
    expect(r).toMatchObject({ status: 'built', reason: 'outputs-missing' });
    const w = events.find((e) => e.type === 'warning');
    expect(w).toMatchObject({ code: 'OUTPUTS_MISSING' });
    expect(w && 'message' in w ? w.message : '').toContain('"docs/**"');
    expect(store.counts.tag).toBe(0);
    expect(lock.leases[0]?.released).toBe('failed');
  });

  it('read-only: a miss builds and pushes nothing, takes no lock; a hit restores', async () => {
    const store = countingStore(createMemoryStore());
    const lock = fakeLock();
    const dir = await project();
    const build = Object.assign(builder(), { dir });
    const ro = cacheOf({ store, lock, readOnly: true });
    expect(await ro.run({ ...run, dir }, build)).toMatchObject({ status: 'built', reason: 'read-only' });
    expect(store.counts.pushBlob + store.counts.pushManifest + store.counts.tag).toBe(0);
    expect(lock.keys).toEqual([]);
    await cacheOf({ store, lock: false }).run({ ...run, dir }, build);
    await rm(join(dir, 'dist'), { recursive: true });
    expect((await ro.run({ ...run, dir }, build)).status).toBe('restored');
  });

  it('force rebuilds on a hit and overwrites the tag', async () => {
    const store = createMemoryStore();
    const dir = await project();
    await cacheOf({ store, lock: false }).run(
      { ...run, dir, key: 'k1' },
      Object.assign(builder('old'), { dir }),
    );
    const before = store.tags().get('k1');
    const build = Object.assign(builder('new'), { dir });
    const r = await cacheOf({ store, lock: false, force: true }).run({ ...run, dir, key: 'k1' }, build);
    expect(r.status).toBe('saved');
    expect(build.calls).toBe(1);
    expect(store.tags().get('k1')).not.toBe(before);
    await rm(join(dir, 'dist'), { recursive: true });
    await cacheOf({ store, lock: false }).run({ ...run, dir, key: 'k1' }, build);
    expect(await readFile(join(dir, 'dist/out.txt'), 'utf8')).toMatch(/^new:/);
  });

  it('peer-finished → restores the peer entry without building', async () => {
    const store = createMemoryStore();
    const dir = await project();
    await cacheOf({ store, lock: false }).run(
      { ...run, dir, key: 'peer' },
      Object.assign(builder(), { dir }),
    );
    await rm(join(dir, 'dist'), { recursive: true });
    // Simulate: the lookup missed (no shouldRestore at first), then the peer finished.
    let first = true;
    const events: CacheEvent[] = [];
    const cache = cacheOf({
      store,
      lock: fakeLock(['peer-finished']),
      shouldRestore: () => {
        if (first) {
          first = false;
          return false;
        }
        return true;
      },
      onEvent: (e) => events.push(e),
    });
    const build = Object.assign(builder(), { dir });
    expect((await cache.run({ ...run, dir, key: 'peer' }, build)).status).toBe('restored');
    expect(build.calls).toBe(0);
    expect(events.map((e) => e.type)).toContain('lock-peer-finished');
  });

  it('lock unavailable / timed out → builds and saves without it, with a warning', async () => {
    for (const kind of ['unavailable', 'timed-out'] as const) {
      const events: CacheEvent[] = [];
      const cache = cacheOf({
        store: createMemoryStore(),
        lock: fakeLock([kind]),
        onEvent: (e) => events.push(e),
      });
      const dir = await project();
      const r = await cache.run({ ...run, dir }, Object.assign(builder(), { dir }));
      expect(r.status).toBe('saved');
      expect(events.find((e) => e.type === 'lock-unavailable')).toMatchObject({ reason: kind });
      expect(events.find((e) => e.type === 'warning')).toMatchObject({
        code: kind === 'unavailable' ? 'LOCK_UNAVAILABLE' : 'LOCK_TIMED_OUT',
      });
    }
  });

  it('strict mode turns cache trouble into a CacheRunError', async () => {
    const cache = cacheOf({ store: createMemoryStore(), lock: fakeLock(['unavailable']), strict: true });
    const dir = await project();
    const err = await cache.run({ ...run, dir }, Object.assign(builder(), { dir })).catch((e) => e);
    expect(err).toBeInstanceOf(CacheRunError);
    expect(err).toMatchObject({ code: 'CACHE_ERR_RUN_FAILED', reason: 'LOCK_UNAVAILABLE' });
  });

  it('lease lost mid-build → the result is still saved and the events say so', async () => {
    const store = createMemoryStore();
    const lock = fakeLock();
    const events: CacheEvent[] = [];
    const cache = cacheOf({ store, lock, onEvent: (e) => events.push(e) });
    const dir = await project();
    const inner = Object.assign(builder(), { dir });
    const r = await cache.run({ ...run, dir }, async (ctx) => {
      lock.leases[0]?.lose();
      return inner(ctx);
    });
    expect(r).toMatchObject({ status: 'saved', leaseLost: true });
    expect(events.find((e) => e.type === 'saved')).toMatchObject({ leaseLost: true });
    expect(events.find((e) => e.type === 'warning')).toMatchObject({ code: 'LEASE_LOST' });
    expect(store.tags().has(r.key)).toBe(true);
  });

  it('store failures warn, the build runs, and the circuit breaker stops calling a dead store', async () => {
    const dead = { calls: 0 };
    const fail = (...args: unknown[]) => {
      dead.calls += args.length > 0 ? 1 : 0;
      return Promise.reject(
        Object.assign(new Error('HTTP 503 Service Unavailable'), { code: 'REGISTRY_ERROR' }),
      );
    };
    const failing: OciStore = {
      location: 'https://dead.example/repo',
      fetchBlob: fail,
      blobExists: fail,
      pushBlob: fail,
      fetchManifest: fail,
      pushManifest: fail,
      tag: fail,
    };
    const events: CacheEvent[] = [];
    const cache = cacheOf({
      store: failing,
      lock: false,
      circuitBreakerThreshold: 2,
      onEvent: (e) => events.push(e),
    });
    const dir = await project();
    const build = Object.assign(builder(), { dir });
    for (let i = 0; i < 4; i++) {
      const r = await cache.run({ ...run, dir, key: `k${i}` }, build);
      expect(r.status).toBe('built');
    }
    expect(build.calls).toBe(4);
    const codes = events.filter((e) => e.type === 'warning').map((e) => (e as { code: string }).code);
    expect(codes).toContain('LOOKUP_FAILED');
    expect(codes).toContain('CIRCUIT_OPEN');
    const callsWhenOpen = dead.calls;
    await cache.run({ ...run, dir, key: 'k9' }, build);
    expect(dead.calls).toBe(callsWhenOpen);
  });

  it('an unreachable own store does not make the run skip its read scopes (a breaker per store)', async () => {
    const unreachable = () =>
      Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'OCI_ERR_NETWORK' }));
    const down: OciStore = {
      location: 'https://down.example/pr-1',
      fetchBlob: unreachable,
      blobExists: unreachable,
      pushBlob: unreachable,
      fetchManifest: unreachable,
      pushManifest: unreachable,
      tag: unreachable,
    };
    const main = createMemoryStore();
    const dir = await project();
    const build = Object.assign(builder(), { dir });
    const saved = await cacheOf({ store: main, lock: false }).run({ ...run, dir }, build);
    expect(saved.status).toBe('saved');
    await rm(join(dir, 'dist'), { recursive: true });
    const events: CacheEvent[] = [];
    const cache = cacheOf({
      store: down,
      readScopes: [main],
      lock: false,
      stateDir: join(stateDir, 'scopes'),
      onEvent: (e) => events.push(e),
    });
    for (let i = 0; i < 2; i++) {
      await rm(join(dir, 'dist'), { recursive: true, force: true });
      const hit = await cache.run({ ...run, dir }, build);
      // The own store's trouble is a warning (then its breaker skips it); the scope still serves.
      expect(hit.status).toBe('restored');
    }
    expect(build.calls).toBe(1);
    const codes = events.filter((e) => e.type === 'warning').map((e) => (e as { code: string }).code);
    expect(codes).toContain('LOOKUP_FAILED');
  });

  it('aborting releases the lock and rejects with the signal reason; outputs untouched', async () => {
    const lock = fakeLock();
    const cache = cacheOf({ store: createMemoryStore(), lock });
    const dir = await project();
    const ac = new AbortController();
    const reason = new Error('cancelled by user');
    const err = await cache
      .run({ ...run, dir, signal: ac.signal }, async ({ signal }) => {
        ac.abort(reason);
        signal.throwIfAborted();
      })
      .catch((e) => e);
    expect(err).toBe(reason);
    expect(lock.leases[0]?.released).toBe('failed');
    await expect(cache.run({ ...run, dir, signal: ac.signal }, () => undefined)).rejects.toBe(reason);
  });

  it('aborting during the restore rejects with the reason and leaves the outputs as they were', async () => {
    const store = createMemoryStore();
    const dir = await project();
    await cacheOf({ store, lock: false }).run({ ...run, dir }, Object.assign(builder(), { dir }));
    await writeFile(join(dir, 'dist/out.txt'), 'local edit');
    const ac = new AbortController();
    const reason = new Error('ctrl-c');
    const cache = cacheOf({
      store,
      lock: false,
      onEvent: (e) => {
        if (e.type === 'hit') ac.abort(reason);
      },
    });
    let built = 0;
    const err = await cache
      .run({ ...run, dir, signal: ac.signal }, () => {
        built++;
      })
      .catch((e) => e);
    expect(err).toBe(reason);
    expect(built).toBe(0);
    expect(await readFile(join(dir, 'dist/out.txt'), 'utf8')).toBe('local edit');
  });

  it('aborting after the lock is acquired releases it `failed` and never builds', async () => {
    const lock = fakeLock();
    const ac = new AbortController();
    const reason = new Error('stop');
    const cache = cacheOf({
      store: createMemoryStore(),
      lock,
      onEvent: (e) => {
        if (e.type === 'lock-acquired') ac.abort(reason);
      },
    });
    const dir = await project();
    let built = 0;
    const err = await cache
      .run({ ...run, dir, signal: ac.signal }, () => {
        built++;
      })
      .catch((e) => e);
    expect(err).toBe(reason);
    expect(built).toBe(0);
    expect(lock.leases[0]?.released).toBe('failed');
  });

  it('disabled → just builds', async () => {
    const store = countingStore(createMemoryStore());
    const cache = cacheOf({ store, enabled: false });
    const dir = await project();
    const build = Object.assign(builder(), { dir });
    expect(await cache.run({ ...run, dir }, build)).toMatchObject({ status: 'built', reason: 'disabled' });
    expect(Object.values(store.counts).every((n) => n === 0)).toBe(true);
  });

  it('the tag of the store URL is the key; an invalid key is a configuration-time error', async () => {
    const cache = cacheOf({ store: 'memory://url-tag:my-key', lock: false });
    const dir = await project();
    expect((await cache.run({ ...run, dir }, Object.assign(builder(), { dir }))).key).toBe('my-key');
    expect(() => cacheOf({ store: 'memory://x:.bad' })).toThrow(CacheConfigError);
    await expect(cache.run({ ...run, dir, key: 'a'.repeat(129) }, () => undefined)).rejects.toMatchObject({
      code: 'CACHE_ERR_INVALID_KEY',
    });
    expect(() => cacheOf({ concurrency: 0 })).toThrow(/concurrency/);
    expect(() => cacheOf({ lock: 'zk://x' })).toThrow(/unsupported scheme "zk:"/);
  });

  it('lookup/restore/save as separate steps', async () => {
    const store = createMemoryStore();
    const cache = cacheOf({ store, lock: false });
    const dir = await project();
    const opts = { ...run, dir };
    expect((await cache.lookup(opts)).hit).toBe(false);
    await Object.assign(builder(), { dir })({ signal: new AbortController().signal });
    const saved = await cache.save(opts);
    expect(saved?.chunksTotal).toBeGreaterThan(0);
    expect(await cache.lookup(opts)).toEqual({ key: await cache.key(opts), hit: true });
    await rm(join(dir, 'dist'), { recursive: true });
    expect((await cache.restore(opts))?.files).toBe(1);
    expect(await readFile(join(dir, 'dist/out.txt'), 'utf8')).toMatch(/^built:/);
  });
});
