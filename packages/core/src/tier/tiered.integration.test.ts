/**
 * Two tiers against the REAL registry (testkit's docker-registry, TLS, token auth), requests
 * counted by testkit's pass-through proxy: a remote hit fills the local tier; with the registry
 * stopped the next run is a local hit with no request; saves land in both tiers; a remote failure
 * during a save is a warning and the local save stands.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLayoutStore, createOciBackend, type OciBackend } from '@task-cache/oci';
import { type FaultProxy, type RegistryFixture, startProxy, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../test/helpers.js';
import type { CacheEvent } from '../events/types.js';
import { createCache } from '../run/cache.js';
import { parseTiers } from './tiered.js';

let reg: RegistryFixture;
let proxy: FaultProxy;
let work: string;
let failWrites = false;
const backends: OciBackend[] = [];
beforeAll(async () => {
  [reg, work] = await Promise.all([startRegistry({ mode: 'token' }), tempDir('tc-tiers-')]);
  proxy = await startProxy({
    upstream: reg.baseUrl,
    ca: reg.caPem as string,
    handle: (req) =>
      failWrites && req.method !== 'GET' && req.method !== 'HEAD'
        ? { kind: 'respond', status: 500, body: 'down for the test' }
        : { kind: 'pass' },
  });
});
afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await proxy?.close();
  await reg?.close();
  await removeDir(work);
});

/** A fresh client (as a fresh process has), through the counting proxy or straight to the registry. */
function backend(viaProxy: boolean): OciBackend {
  const b = createOciBackend({
    url: viaProxy ? `oci://${proxy.host}/tiers/app` : `oci://${reg.host}/tiers/app`,
    plainHttp: viaProxy,
    caPem: reg.caPem as string,
    credentials: { username: reg.username, password: reg.password },
    authFiles: null,
    env: {},
  });
  backends.push(b);
  return b;
}

describe('parseTiers', () => {
  it('reads true, the string form and the object form, and refuses the rest', () => {
    expect(parseTiers(undefined)).toBeUndefined();
    expect(parseTiers(true)).toEqual({ local: 'rw', remote: 'rw' });
    expect(parseTiers('local:rw,remote:r')).toEqual({ local: 'rw', remote: 'r' });
    expect(parseTiers({ remote: 'off' })).toEqual({ local: 'rw', remote: 'off' });
    expect(() => parseTiers('local:rx')).toThrow(/mode of local/);
    expect(() => parseTiers('cloud:rw')).toThrow(/unknown tier/);
  });
});

describe('two tiers: the local layout in front of the registry', () => {
  it('fills the local tier from a remote hit, then hits locally with the registry stopped; saves land in both; remote trouble is a warning', async () => {
    const dir = join(work, 'project');
    const localDir = join(work, 'local-tier');
    const env = { TASK_CACHE_DIR: localDir };
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'src/main.c'), 'int main() { return 0; }\n');
    const task = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
    const build = async () => {
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist/a.txt'), `alpha ${await readSource()}\n`);
      await writeFile(join(dir, 'dist/big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    };
    const readSource = async () =>
      (await import('node:fs/promises')).readFile(join(dir, 'src/main.c'), 'utf8');
    const noBuild = async () => {
      throw new Error('the hit built');
    };
    const local = createLayoutStore(localDir);

    // 1. An entry in the remote only.
    const saver = createCache({
      store: backend(false),
      lock: false,
      stateDir: join(work, 'state-0'),
      env: {},
    });
    const saved = await saver.run(task, build);
    expect(saved.status).toBe('saved');
    await saver.close();

    // 2. A remote hit through the tiers fills the local tier.
    await rm(join(dir, 'dist'), { recursive: true });
    const first = createCache({
      store: backend(true),
      tiers: 'local:rw,remote:rw',
      lock: false,
      stateDir: join(work, 'state-1'),
      env,
    });
    const remoteHit = await first.run(task, noBuild);
    expect(remoteHit).toMatchObject({ status: 'restored', tier: 'remote' });
    // Each blob is downloaded once: the local tier is filled from the same bytes, not a second GET.
    const blobGets = proxy.requests
      .filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.url))
      .map((r) => r.url.split('?')[0]);
    expect(blobGets.length).toBeGreaterThan(0);
    expect(new Set(blobGets).size).toBe(blobGets.length);
    await first.close();
    expect(await local.fetchManifest(saved.key)).toBeDefined();

    // 3. The registry stopped: a fresh cache (as a new process) hits the local tier, no request.
    await reg.stop();
    await rm(join(dir, 'dist'), { recursive: true });
    const seen = proxy.requests.length;
    const events: CacheEvent[] = [];
    const second = createCache({
      store: backend(true),
      tiers: true,
      lock: false,
      stateDir: join(work, 'state-2'),
      env,
      onEvent: (e) => events.push(e),
    });
    const localHit = await second.run(task, noBuild);
    expect(localHit).toMatchObject({ status: 'restored', tier: 'local' });
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ tier: 'local' });
    expect(proxy.requests.length - seen).toBe(0);
    expect(events.filter((e) => e.type === 'warning')).toEqual([]);
    await second.close();
    await reg.start();

    // 4. A save lands in both tiers.
    await writeFile(join(dir, 'src/main.c'), 'int main() { return 1; }\n');
    const third = createCache({
      store: backend(true),
      tiers: true,
      lock: false,
      stateDir: join(work, 'state-3'),
      env,
    });
    const both = await third.run(task, build);
    expect(both.status).toBe('saved');
    await third.close();
    expect(await local.fetchManifest(both.key)).toBeDefined();
    const check = backend(false);
    expect(await check.fetchManifest(both.key)).toBeDefined();

    // 5. The remote refuses writes: a warning, and the local save stands.
    failWrites = true;
    await writeFile(join(dir, 'src/main.c'), 'int main() { return 2; }\n');
    const warned: CacheEvent[] = [];
    const fourth = createCache({
      store: backend(true),
      tiers: true,
      lock: false,
      stateDir: join(work, 'state-4'),
      env,
      onEvent: (e) => warned.push(e),
    });
    const localOnly = await fourth.run(task, build);
    failWrites = false;
    expect(localOnly.status).toBe('saved');
    // The tier's warning names the task whose save it was.
    expect(warned.find((e) => e.type === 'warning' && e.code === 'SAVE_FAILED')).toMatchObject({
      task: 'build',
    });
    await fourth.close();
    expect(await local.fetchManifest(localOnly.key)).toBeDefined();
    expect(await check.fetchManifest(localOnly.key)).toBeUndefined();
  });
});
