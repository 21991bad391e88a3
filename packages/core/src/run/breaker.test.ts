import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OciStore } from '@task-cache/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheEvent } from '../events/types.js';
import { createMemoryStore } from '../store/memory.js';
import { createBreaker } from './breaker.js';
import { createCache } from './cache.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tc-breaker-'));
  await mkdir(join(root, 'src'));
  await writeFile(join(root, 'src/main.c'), 'int main() { return 0; }\n');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const task = { task: 'build', sources: ['src/**'], generates: ['dist/**'] };
const build = async () => {
  await mkdir(join(root, 'dist'), { recursive: true });
  await writeFile(join(root, 'dist/out.txt'), 'built');
};

/** A store whose every call fails like a dead registry, at `location`. */
function deadStore(location: string): OciStore & { calls: number } {
  const store = {
    location,
    calls: 0,
    fetchBlob: fail,
    blobExists: fail,
    pushBlob: fail,
    fetchManifest: fail,
    pushManifest: fail,
    tag: fail,
  };
  function fail(): Promise<never> {
    store.calls++;
    return Promise.reject(Object.assign(new Error('HTTP 503 Service Unavailable'), { code: 'UNAVAILABLE' }));
  }
  return store;
}

const warningCodes = (events: CacheEvent[]) =>
  events.filter((e) => e.type === 'warning').map((e) => (e as { code: string }).code);

describe('the circuit breaker belongs to the cache instance (issue 13)', () => {
  it("two caches in one process: one's outage does not open the other's breaker, even at the same location", async () => {
    // Regression: the breaker was process-global and keyed by store location, so one test's
    // simulated outage made a later test's fresh memory store (every createMemoryStore() is
    // memory://default) answer circuit-open.
    const dead = deadStore('memory://default');
    const deadEvents: CacheEvent[] = [];
    const broken = createCache({
      store: dead,
      lock: false,
      stateDir: root,
      circuitBreakerThreshold: 1,
      onEvent: (e) => deadEvents.push(e),
    });
    await broken.run({ ...task, dir: root, key: 'k1' }, build);
    const second = await broken.run({ ...task, dir: root, key: 'k2' }, build);
    expect(second).toMatchObject({ status: 'built', reason: 'circuit-open' });
    expect(warningCodes(deadEvents)).toContain('CIRCUIT_OPEN');

    const healthy = createMemoryStore();
    expect(healthy.location).toBe(dead.location);
    const events: CacheEvent[] = [];
    const other = createCache({
      store: healthy,
      lock: false,
      stateDir: root,
      circuitBreakerThreshold: 1,
      onEvent: (e) => events.push(e),
    });
    const r = await other.run({ ...task, dir: root, key: 'k1' }, build);
    expect(r.status).toBe('saved');
    expect(warningCodes(events)).toEqual([]);

    // …and the broken cache is still open: its own state, not reset by the other's success.
    const calls = dead.calls;
    expect((await broken.run({ ...task, dir: root, key: 'k3' }, build)).reason).toBe('circuit-open');
    expect(dead.calls).toBe(calls);
  });

  it('a fresh memory store never answers circuit-open because of an earlier cache', async () => {
    const earlier = createCache({
      store: deadStore('memory://default'),
      lock: false,
      stateDir: root,
      circuitBreakerThreshold: 1,
    });
    for (const key of ['a', 'b', 'c']) await earlier.run({ ...task, dir: root, key }, build);
    const events: CacheEvent[] = [];
    const fresh = createCache({
      store: createMemoryStore(),
      lock: false,
      stateDir: root,
      onEvent: (e) => events.push(e),
    });
    expect((await fresh.run({ ...task, dir: root, key: 'a' }, build)).status).toBe('saved');
    expect((await fresh.lookup({ ...task, dir: root, key: 'a' })).hit).toBe(true);
    expect(warningCodes(events)).toEqual([]);
  });
});

describe('createBreaker', () => {
  it('opens after `threshold` consecutive failures for `cooldownMs`; a success closes it', () => {
    let now = 1000;
    const state = createBreaker(() => now);
    const b = state.view(2, 500);
    b.failure();
    expect(b.isOpen()).toBe(false);
    b.failure();
    expect(b.isOpen()).toBe(true);
    now += 499;
    expect(b.isOpen()).toBe(true);
    now += 1;
    expect(b.isOpen()).toBe(false);
    b.failure();
    expect(b.isOpen()).toBe(true);
    b.success();
    expect(b.isOpen()).toBe(false);
    expect(
      createBreaker(() => now)
        .view(1, 500)
        .isOpen(),
    ).toBe(false);
  });
});
