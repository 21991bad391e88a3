import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createOciBackend, type OciBackend } from '@task-cache/oci';
import { type FaultProxy, type RegistryFixture, startProxy, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../test/helpers.js';
import { createCache } from './cache.js';

// Issue 14 step 4: a hit against the REAL registry (docker-registry, TLS, token auth) costs the
// requests the protocol needs and no more. The requests are counted by a pass-through proxy in
// front of the registry (testkit), the token requests by the token server itself.

let reg: RegistryFixture;
let proxy: FaultProxy;
let work: string;
const backends: OciBackend[] = [];
beforeAll(async () => {
  [reg, work] = await Promise.all([startRegistry({ mode: 'token' }), tempDir('tc-reg-hit-')]);
  proxy = await startProxy({ upstream: reg.baseUrl, ca: reg.caPem as string });
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
    url: viaProxy ? `oci://${proxy.host}/small/hit` : `oci://${reg.host}/small/hit`,
    plainHttp: viaProxy,
    caPem: reg.caPem as string,
    credentials: { username: reg.username, password: reg.password },
    authFiles: null,
    env: {},
  });
  backends.push(b);
  return b;
}

describe('a registry hit of a one-chunk entry', () => {
  it('costs manifest, config and chunk after the token; the token is fetched once and reused', async () => {
    const dir = join(work, 'project');
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'src/main.c'), 'int main() { return 0; }\n');
    const task = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
    const build = async () => {
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist/a.txt'), 'alpha\n');
      await writeFile(join(dir, 'dist/b.txt'), 'bravo\n');
    };
    const saver = createCache({ store: backend(false), lock: false, stateDir: join(work, 'state-save') });
    const saved = await saver.run(task, build);
    expect(saved.status).toBe('saved');
    expect(saved.stats.chunksTotal).toBe(1);

    // A fresh cache and client, as in a new process; no stamp (its own state dir), no outputs.
    await rm(join(dir, 'dist'), { recursive: true });
    const cache = createCache({ store: backend(true), lock: false, stateDir: join(work, 'state-hit') });
    const tokensBefore = reg.tokenServer?.requests ?? 0;
    const hit = await cache.run(task, async () => {
      throw new Error('the hit built');
    });
    expect(hit).toMatchObject({ status: 'restored' });
    expect(hit.reason).toBeUndefined();
    expect((reg.tokenServer?.requests ?? 0) - tokensBefore).toBe(1);
    const authorized = proxy.requests.filter((r) => r.headers.authorization !== undefined);
    const challenges = proxy.requests.filter((r) => r.headers.authorization === undefined);
    // The first request learns the challenge (401), then: manifest (by tag), config, chunk.
    expect(challenges.length).toBeLessThanOrEqual(1);
    expect(
      authorized.map((r) => `${r.method} ${r.url.split('?')[0]?.split('/').slice(4, 6).join('/')}`),
    ).toEqual([
      `GET manifests/${hit.key}`,
      expect.stringMatching(/^GET blobs\/sha256:[0-9a-f]{64}$/),
      expect.stringMatching(/^GET blobs\/sha256:[0-9a-f]{64}$/),
    ]);

    // A second hit in the same process: the token is reused, no challenge, the same 3 requests.
    await rm(join(dir, 'dist'), { recursive: true });
    const seen = proxy.requests.length;
    const again = await cache.run(task, async () => {
      throw new Error('the hit built');
    });
    expect(again.status).toBe('restored');
    expect((reg.tokenServer?.requests ?? 0) - tokensBefore).toBe(1);
    const next = proxy.requests.slice(seen);
    expect(next.map((r) => r.method)).toEqual(['GET', 'GET', 'GET']);
    expect(next.every((r) => r.headers.authorization !== undefined)).toBe(true);
    await Promise.all([saver.close(), cache.close()]);
  });
});
