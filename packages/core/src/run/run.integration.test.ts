import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lease, Lock } from '@task-cache/lock';
import { connectLock } from '@task-cache/lock/redis';
import { createOciBackend } from '@task-cache/oci';
import {
  type RedisFixture,
  type RegistryFixture,
  startProxy,
  startRedis,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CacheRunError } from '../config/errors.js';
import { formatEvent } from '../events/format.js';
import type { CacheEvent } from '../events/types.js';
import { checksum } from '../key/checksum.js';
import { urlsafe } from '../key/urlsafe.js';
import { type Cache, createCache } from './cache.js';
import type { CacheLock } from './types.js';

// Acceptance tests of the cached run against the REAL registry (docker-registry 2.8.2, token
// auth + TLS) and the REAL redis-server, both from @task-cache/testkit. No mocks.
// One file (~550 lines) on purpose: every case shares the registry and the Redis started once in
// beforeAll (a start costs seconds); the cases are grouped by concern in describe blocks.

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/fixtures/run-child.ts', import.meta.url));

let reg: RegistryFixture;
let redis: RedisFixture;
/** HOME and the cache dir of the caches of this file: a temp dir, never the user's. */
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'tc-guide-home-'));
  [reg, redis] = await Promise.all([startRegistry({ mode: 'token' }), startRedis({ maxmemory: '64mb' })]);
});
afterAll(async () => {
  await Promise.all([reg?.close(), redis?.stop()]);
  await rm(home, { recursive: true, force: true });
});

const dirs: string[] = [];
const caches: Cache[] = [];
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function project(seed = 'main'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tc-guide-'));
  dirs.push(dir);
  await mkdir(join(dir, 'src/lib'), { recursive: true });
  await writeFile(join(dir, 'src/main.c'), `int main() { return 0; } /* ${seed} */\n`);
  await writeFile(join(dir, 'src/lib/util.c'), 'int util(void) { return 1; }\n');
  return dir;
}

/** The guide's build.sh: derives dist/ from src/ (deterministic). */
function buildSh(dir: string) {
  const b = Object.assign(
    async () => {
      b.calls += 1;
      await mkdir(join(dir, 'dist'), { recursive: true });
      const src = await readFile(join(dir, 'src/main.c'));
      await writeFile(join(dir, 'dist/app'), Buffer.concat([src, Buffer.alloc(200_000, 1)]));
      await writeFile(join(dir, 'dist/app.map'), createHash('sha256').update(src).digest('hex'));
    },
    { calls: 0 },
  );
  return b;
}

/** The environment of the guide: masked CI variables. */
function ciEnv(overrides: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    HOME: home,
    TASK_CACHE_DIR: join(home, 'cache'),
    TASK_CACHE_OCI_USER: reg.username,
    TASK_CACHE_OCI_PASSWORD: reg.password,
    TASK_CACHE_OCI_CA: reg.caFile!,
    CI_CACHE_REDIS_URL: `:${encodeURIComponent(redis.password!)}@${redis.host}:${redis.port}`,
    ...overrides,
  };
}

/** The Taskfile's `cache:` block, templated as the runner does. */
async function guideConfig(dir: string, env: Record<string, string | undefined>, repo = 'task-cache/build') {
  const sum = await checksum({ dir, sources: ['src/**'] });
  const key = `${urlsafe('build')}-${sum}`;
  return {
    key,
    url: `oci://${reg.host}/${repo}:${key}`,
    lock: `redis://${env.CI_CACHE_REDIS_URL}/lock:${key}`,
  };
}

function track(cache: Cache): Cache {
  caches.push(cache);
  return cache;
}

async function registryTags(repo: string): Promise<string[]> {
  const store = createOciBackend({
    url: `oci://${reg.host}/${repo}`,
    ca: reg.caFile!,
    credentials: { username: reg.username, password: reg.password },
  });
  try {
    const tags: string[] = [];
    for await (const t of store.listTags()) tags.push(t);
    return tags;
  } catch (error) {
    if ((error as { code?: string }).code === 'OCI_ERR_NAME_UNKNOWN') return [];
    throw error;
  } finally {
    await store.close();
  }
}

async function blobCount(): Promise<number> {
  const root = join(reg.storageDir, 'docker/registry/v2/blobs/sha256');
  if (!existsSync(root)) return 0;
  let n = 0;
  for (const prefix of await readdir(root)) n += (await readdir(join(root, prefix))).length;
  return n;
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const p = join(dir, name);
    try {
      out[name] = createHash('sha256')
        .update(await readFile(p))
        .digest('hex');
    } catch {
      // directory
    }
  }
  return out;
}

describe("the operator guide's walkthrough", () => {
  it('first run builds and pushes, dist removed, second run restores without calling the build', async () => {
    const dir = await project();
    const env = ciEnv();
    const cfg = await guideConfig(dir, env);
    const lines: string[] = [];
    const events: CacheEvent[] = [];
    const onEvent = (e: CacheEvent) => {
      events.push(e);
      const line = formatEvent(e);
      if (line) lines.push(line);
    };
    const build = buildSh(dir);
    const tokenRequestsBefore = reg.tokenServer!.requests;

    const first = await track(createCache({ store: cfg.url, lock: cfg.lock, env, onEvent })).run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      build,
    );
    expect(first).toMatchObject({ status: 'saved', key: cfg.key });
    expect(build.calls).toBe(1);
    expect(lines.at(-1)).toMatch(
      /^task: "build" saved to cache \(pushed (\d+)\/\1 chunks, \d+\.\d (B|kB|MB)\)$/,
    );
    expect(reg.tokenServer!.requests).toBeGreaterThan(tokenRequestsBefore);
    expect(await registryTags('task-cache/build')).toContain(cfg.key);
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['lookup', 'miss', 'lock-acquired', 'saved']),
    );
    // no secret in any event
    const all = JSON.stringify(events);
    expect(all).not.toContain(reg.password);
    expect(all).not.toContain(redis.password!);

    const before = await tree(join(dir, 'dist'));
    await rm(join(dir, 'dist'), { recursive: true });
    await rm(join(dir, '.task'), { recursive: true, force: true });
    lines.length = 0;
    const second = await track(createCache({ store: cfg.url, lock: cfg.lock, env, onEvent })).run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      build,
    );
    expect(second).toMatchObject({ status: 'restored', key: cfg.key });
    expect(build.calls).toBe(1);
    expect(lines).toEqual(['task: "build" restored from cache']);
    expect(await tree(join(dir, 'dist'))).toEqual(before);
  });

  it('6 processes at once: the build runs exactly once, the other 5 restore, all end with identical dist', async () => {
    const base = await project('concurrent');
    const env = ciEnv();
    const cfg = await guideConfig(base, env, 'task-cache/concurrent');
    const counter = join(base, 'builds.log');
    await writeFile(counter, '');
    const children = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const dir = join(base, `job${i}`);
        await mkdir(dir);
        await cp(join(base, 'src'), join(dir, 'src'), { recursive: true });
        return dir;
      }),
    );
    const results = await Promise.all(
      children.map(
        (dir) =>
          new Promise<{ status: string; key: string; events: string[] }>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
              cwd: ROOT,
              env: {
                ...process.env,
                TC_CHILD: JSON.stringify({ dir, store: cfg.url, lock: cfg.lock, env, counter }),
              },
              stdio: ['ignore', 'pipe', 'pipe'],
            });
            let out = '';
            let err = '';
            child.stdout.on('data', (d) => {
              out += d;
            });
            child.stderr.on('data', (d) => {
              err += d;
            });
            child.on('exit', (code) => {
              if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
              else resolve(JSON.parse(out.trim().split('\n').at(-1)!));
            });
          }),
      ),
    );
    const builds = (await readFile(counter, 'utf8')).split('\n').filter(Boolean);
    expect(builds).toHaveLength(1);
    expect(results.map((r) => r.status).sort()).toEqual([
      'restored',
      'restored',
      'restored',
      'restored',
      'restored',
      'saved',
    ]);
    for (const r of results) expect(r.events.filter((e) => e.startsWith('warning'))).toEqual([]);
    const trees = await Promise.all(children.map((d) => tree(join(d, 'dist'))));
    expect(Object.keys(trees[0]!)).toHaveLength(20);
    for (const t of trees) expect(t).toEqual(trees[0]);
  });
});

describe('degradation: cache trouble never fails the build', () => {
  it('Redis stopped → the run still builds and saves, with a warning; restores work', async () => {
    const dead = await startRedis();
    const deadUrl = dead.url('lock:x');
    await dead.kill();
    const dir = await project('redis-stopped');
    const env = ciEnv();
    const cfg = await guideConfig(dir, env, 'task-cache/degraded');
    const events: CacheEvent[] = [];
    const cache = track(createCache({ store: cfg.url, lock: deadUrl, env, onEvent: (e) => events.push(e) }));
    const r = await cache.run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      buildSh(dir),
    );
    expect(r.status).toBe('saved');
    const w = events.find((e) => e.type === 'warning');
    expect(w).toMatchObject({ code: 'LOCK_UNAVAILABLE' });
    expect(JSON.stringify(events)).not.toContain(dead.password!);
    await rm(join(dir, 'dist'), { recursive: true });
    expect(
      (await cache.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, buildSh(dir)))
        .status,
    ).toBe('restored');
    await dead.stop();
  });

  it('Redis OOM → the run builds and saves without the lock, with a warning', async () => {
    const small = await startRedis({ maxmemory: '64mb' });
    try {
      await small.forceOom();
      const dir = await project('redis-oom');
      const env = ciEnv();
      const cfg = await guideConfig(dir, env, 'task-cache/degraded');
      const events: CacheEvent[] = [];
      const cache = track(
        createCache({ store: cfg.url, lock: small.url(), env, onEvent: (e) => events.push(e) }),
      );
      const r = await cache.run(
        { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
        buildSh(dir),
      );
      expect(r.status).toBe('saved');
      expect(events.find((e) => e.type === 'lock-unavailable')).toMatchObject({ reason: 'unavailable' });
      expect(events.find((e) => e.type === 'warning')).toMatchObject({
        code: 'LOCK_UNAVAILABLE',
        causeCode: 'LOCK_ERR_UNAVAILABLE',
      });
    } finally {
      await small.stop();
    }
  });

  it('registry answering 503 → the build runs, warnings, no hang; the circuit breaker opens', async () => {
    let requests = 0;
    const server: Server = createServer((req, res) => {
      requests++;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const dir = await project('503');
      const events: CacheEvent[] = [];
      const cache = track(
        createCache({
          store: `oci://127.0.0.1:${port}/task-cache/down?plain-http=true`,
          lock: false,
          env: { HOME: home },
          circuitBreakerThreshold: 2,
          onEvent: (e) => events.push(e),
        }),
      );
      const build = buildSh(dir);
      const first = await cache.run(
        { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
        build,
      );
      expect(first).toMatchObject({ status: 'built', reason: 'save-failed' });
      expect(build.calls).toBe(1);
      const warnings = events.filter((e) => e.type === 'warning');
      expect(warnings.map((w) => (w as { code: string }).code)).toEqual(['LOOKUP_FAILED', 'SAVE_FAILED']);
      expect((warnings[0] as { message: string }).message).toMatch(/503/);
      // The breaker is open now: the next run does not talk to the registry at all.
      const seen = requests;
      const second = await cache.run(
        { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
        build,
      );
      expect(second).toMatchObject({ status: 'built', reason: 'circuit-open' });
      expect(requests).toBe(seen);
    } finally {
      server.close();
    }
  });

  it('registry rate-limiting blob pushes (429, Retry-After beyond the bound) → typed TOOMANYREQUESTS warning, the build result stands; strict → CacheRunError', async () => {
    // The proxy answers every upload session with 429 and a Retry-After of an hour, as GHCR does
    // once a token's layer pushes per minute are spent; everything else reaches the registry.
    const proxy = await startProxy({
      upstream: reg.baseUrl,
      ca: reg.caPem!,
      handle: (req) =>
        req.method === 'POST' && req.url.includes('/blobs/uploads/')
          ? {
              kind: 'respond',
              status: 429,
              headers: { 'retry-after': '3600', 'content-type': 'application/json' },
              body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded"}]}',
            }
          : { kind: 'pass' },
    });
    try {
      const dir = await project('rate-limited');
      const env = ciEnv();
      const url = `oci://${proxy.host}/task-cache/limited?plain-http=true`;
      const opts = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
      const events: CacheEvent[] = [];
      const cache = track(createCache({ store: url, lock: false, env, onEvent: (e) => events.push(e) }));
      const build = buildSh(dir);
      const r = await cache.run(opts, build);
      expect(r).toMatchObject({ status: 'built', reason: 'save-failed' });
      expect(build.calls).toBe(1);
      expect(await readFile(join(dir, 'dist/app.map'), 'utf8')).toHaveLength(64);
      const w = events.find((e) => e.type === 'warning' && e.code === 'SAVE_FAILED') as {
        causeCode?: string;
        message: string;
      };
      expect(w.causeCode).toBe('OCI_ERR_TOO_MANY_REQUESTS');
      expect(w.message).not.toContain(reg.password);
      // Retry-After (1 h) is beyond the bound: one session attempt per blob, no waiting it out.
      const posts = proxy.requests.filter((q) => q.method === 'POST').length;
      expect(posts).toBeGreaterThan(0);
      expect(posts).toBeLessThanOrEqual(8);

      const strict = track(createCache({ store: url, lock: false, env, strict: true }));
      const err = await strict.run(opts, build).catch((e) => e);
      expect(err).toBeInstanceOf(CacheRunError);
      expect(err.cause).toMatchObject({ code: 'OCI_ERR_TOO_MANY_REQUESTS', statusCode: 429 });
    } finally {
      await proxy.close();
    }
  });

  it('wrong registry password → warning with a clear reason; strict mode → CacheRunError', async () => {
    const dir = await project('wrong-password');
    const env = ciEnv({ TASK_CACHE_OCI_PASSWORD: 'not-the-password' });
    const cfg = await guideConfig(dir, env, 'task-cache/denied');
    const events: CacheEvent[] = [];
    const cache = track(createCache({ store: cfg.url, lock: cfg.lock, env, onEvent: (e) => events.push(e) }));
    const build = buildSh(dir);
    const r = await cache.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, build);
    expect(r.status).toBe('built');
    expect(build.calls).toBe(1);
    const w = events.find((e) => e.type === 'warning') as { message: string; causeCode?: string };
    expect(w.causeCode).toBe('OCI_ERR_UNAUTHORIZED');
    expect(w.message).not.toContain('not-the-password');

    // The failures above opened the first cache's breaker; this cache has its own and sees the 401.
    const strict = track(createCache({ store: cfg.url, lock: cfg.lock, env, strict: true }));
    const err = await strict
      .run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, build)
      .catch((e) => e);
    expect(err).toBeInstanceOf(CacheRunError);
    expect(err.cause).toMatchObject({ code: 'OCI_ERR_UNAUTHORIZED' });
    expect(String(err.message)).not.toContain('not-the-password');
  });

  it('lease lost mid-build → the result is still saved and the events say so', async () => {
    const dir = await project('lease-lost');
    const env = ciEnv();
    const cfg = await guideConfig(dir, env, 'task-cache/lease');
    const real: Lock = await connectLock(redis.url(), { ttlMs: 1000 });
    let lease: Lease | undefined;
    const lock: CacheLock = {
      async acquireOrWait(key, options) {
        const outcome = await real.acquireOrWait(key, options);
        if (outcome.kind === 'acquired') lease = outcome.lease;
        return outcome;
      },
    };
    const events: CacheEvent[] = [];
    const cache = track(createCache({ store: cfg.url, lock, env, onEvent: (e) => events.push(e) }));
    const inner = buildSh(dir);
    try {
      const r = await cache.run(
        { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
        async () => {
          // Someone wipes the lock Redis while we build: the next renewal finds the lease gone.
          await redis.command('FLUSHALL');
          await new Promise<void>((resolve) => {
            if (lease!.signal.aborted) resolve();
            lease!.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          await inner();
        },
      );
      expect(r).toMatchObject({ status: 'saved', leaseLost: true });
      expect(events.find((e) => e.type === 'saved')).toMatchObject({ leaseLost: true });
      expect(events.find((e) => e.type === 'warning')).toMatchObject({ code: 'LEASE_LOST' });
      expect(await registryTags('task-cache/lease')).toContain(cfg.key);
    } finally {
      await real.close();
    }
  });
});

describe('configuration', () => {
  it('credentials from a docker config.json (user name with $), no TASK_CACHE_OCI_* set', async () => {
    const dir = await project('config-json');
    const dockerDir = join(dir, '.docker');
    await mkdir(dockerDir);
    const auth = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    await writeFile(join(dockerDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth } } }));
    const env = { HOME: dir, DOCKER_CONFIG: dockerDir, TASK_CACHE_OCI_CA: reg.caFile! };
    const events: CacheEvent[] = [];
    const cache = track(
      createCache({
        store: `oci://${reg.host}/task-cache/dockercfg`,
        lock: false,
        env,
        onEvent: (e) => events.push(e),
      }),
    );
    const r = await cache.run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      buildSh(dir),
    );
    expect(events.filter((e) => e.type === 'warning')).toEqual([]);
    expect(r.status).toBe('saved');
    // The entry's tag plus the per-task pointer tag that each save moves (docs/format.md §6.1).
    expect((await registryTags('task-cache/dockercfg')).sort()).toEqual([r.key, 'build.latest'].sort());
  });

  it('no url and no lock: the embedded layout store in $TASK_CACHE_DIR and the local lock', async () => {
    const dir = await project('embedded');
    const cacheDir = join(dir, '.cache-home');
    const env = { HOME: dir, TASK_CACHE_DIR: cacheDir };
    const build = buildSh(dir);
    const first = await track(createCache({ env })).run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      build,
    );
    expect(first.status).toBe('saved');
    expect(existsSync(join(cacheDir, 'index.json'))).toBe(true);
    expect(existsSync(join(cacheDir, 'oci-layout'))).toBe(true);
    await rm(join(dir, 'dist'), { recursive: true });
    const second = await track(createCache({ store: '', lock: '', env })).run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      build,
    );
    expect(second.status).toBe('restored');
    expect(build.calls).toBe(1);
  });
});

describe('policies on the real registry', () => {
  it('read-only: a miss builds and pushes nothing (checked on the registry); a hit restores', async () => {
    const dir = await project('read-only');
    const env = ciEnv();
    const cfg = await guideConfig(dir, env, 'task-cache/readonly');
    const blobsBefore = await blobCount();
    const build = buildSh(dir);
    const ro = track(createCache({ store: cfg.url, lock: cfg.lock, env, readOnly: true }));
    expect(
      await ro.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, build),
    ).toMatchObject({
      status: 'built',
      reason: 'read-only',
    });
    expect(await registryTags('task-cache/readonly')).toEqual([]);
    expect(await blobCount()).toBe(blobsBefore);

    await track(createCache({ store: cfg.url, lock: cfg.lock, env })).run(
      { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
      build,
    );
    await rm(join(dir, 'dist'), { recursive: true });
    expect(
      (await ro.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, build)).status,
    ).toBe('restored');
  });

  it('force: rebuilds on a hit and overwrites the tag', async () => {
    const dir = await project('force');
    const env = ciEnv();
    const store = `oci://${reg.host}/task-cache/force`;
    const opts = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'], key: 'fixed-key' };
    await track(createCache({ store, lock: false, env })).run(opts, buildSh(dir));
    const digestOf = async () => {
      const b = createOciBackend({
        url: `${store}`,
        ca: reg.caFile!,
        credentials: { username: reg.username, password: reg.password },
      });
      try {
        return (await b.fetchManifest('fixed-key'))?.descriptor.digest;
      } finally {
        await b.close();
      }
    };
    const before = await digestOf();
    const build = Object.assign(
      async () => {
        build.calls++;
        await writeFile(join(dir, 'dist/app'), 'rebuilt differently');
      },
      { calls: 0 },
    );
    const r = await track(createCache({ store, lock: false, env, force: true })).run(opts, build);
    expect(r.status).toBe('saved');
    expect(build.calls).toBe(1);
    expect(await digestOf()).not.toBe(before);
  });
});

describe('a cache hit costs one manifest GET (issue 13)', () => {
  it('a run() hit on a one-chunk entry makes one manifest GET, one config GET and one chunk GET, nothing else', async () => {
    // Regression: lookup (hasEntry) and restore each resolved the entry, so a hit cost two
    // manifest GETs, a HEAD and a GET of the config before the chunks.
    const proxy = await startProxy({ upstream: reg.baseUrl, ca: reg.caPem! });
    const repo = 'task-cache/counted';
    const store = createOciBackend({
      url: `oci://${proxy.host}/${repo}`,
      plainHttp: true,
      caPem: reg.caPem!,
      credentials: { username: reg.username, password: reg.password },
      authFiles: null,
      env: {},
    });
    try {
      const dir = await project('counted');
      const cache = track(createCache({ store, lock: false, stateDir: join(dir, '.state') }));
      const opts = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
      const build = async () => {
        await mkdir(join(dir, 'dist'), { recursive: true });
        await writeFile(join(dir, 'dist/app.txt'), 'one small output, one chunk\n');
      };
      // The save also gives the client its token: the hit below is measured with it warm.
      const first = await cache.run(opts, build);
      expect(first).toMatchObject({ status: 'saved', stats: { chunksTotal: 1 } });
      await rm(join(dir, 'dist'), { recursive: true });

      proxy.requests.length = 0;
      const hit = await cache.run(opts, async () => {
        throw new Error('a hit must not build');
      });
      const seen = proxy.requests.map((r) => `${r.method} ${r.url}`);
      console.log(`requests of one cache hit:\n  ${seen.join('\n  ')}`);
      expect(hit.status).toBe('restored');
      expect(await readFile(join(dir, 'dist/app.txt'), 'utf8')).toBe('one small output, one chunk\n');

      const manifest = JSON.parse(
        Buffer.from((await store.fetchManifest(first.key))!.bytes).toString('utf8'),
      ) as { config: { digest: string }; layers: Array<{ digest: string }> };
      expect(manifest.layers).toHaveLength(1);
      expect(seen).toEqual([
        `GET /v2/${repo}/manifests/${first.key}`,
        `GET /v2/${repo}/blobs/${manifest.config.digest}`,
        `GET /v2/${repo}/blobs/${manifest.layers[0]!.digest}`,
      ]);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
