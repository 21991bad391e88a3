// What the client learns from a registry's answers (issue 17): PATCH size limits, the upload
// form, refused mounts — through the quirk proxy of @task-cache/testkit in front of the REAL
// CNCF registry, each profile playing a registry's documented rule.
import { createHash } from 'node:crypto';
import {
  type QuirkProfile,
  type QuirkProxy,
  type RegistryFixture,
  startQuirkProxy,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOciClient, type OciRepository } from './client.js';
import type { Descriptor } from './types.js';

let reg: RegistryFixture;
const closers: (() => Promise<void>)[] = [];
let seq = 0;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'anonymous' });
});
afterAll(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await reg?.close();
});

async function via(
  profile: QuirkProfile,
  options: Record<string, unknown> = {},
  existing?: QuirkProxy,
): Promise<{ repo: OciRepository; proxy: QuirkProxy }> {
  const proxy = existing ?? (await startQuirkProxy({ upstream: reg.baseUrl, profile }));
  if (!existing) closers.push(() => proxy.close());
  const client = createOciClient({
    registry: proxy.host,
    plainHttp: true,
    authFiles: null,
    env: {},
    minRetryDelayMs: 10,
    maxRetryDelayMs: 50,
    ...options,
  });
  closers.push(() => client.close());
  return { repo: client.repository(`learned/r${++seq}`), proxy };
}

function blob(size: number, seed: number): { bytes: Uint8Array; descriptor: Descriptor } {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) bytes[i] = (seed * 31 + i / 4096) & 0xff;
  bytes[0] = seed & 0xff;
  return {
    bytes,
    descriptor: {
      mediaType: 'application/octet-stream',
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      size,
    },
  };
}

const patchSizes = (proxy: QuirkProxy) =>
  proxy.requests.filter((r) => r.method === 'PATCH').map((r) => Number(r.headers['content-length']));

describe('learned from the answers', () => {
  it('ecr: a part below 5 MiB refused after the first → the blob goes up again in 5 MiB parts, remembered for the next blob', async () => {
    const { repo, proxy } = await via('ecr', { monolithicUploadMaxBytes: 0 });
    const a = blob(12 * 1024 * 1024, 1);
    await repo.pushBlob(a.descriptor, a.bytes);
    expect(proxy.refusals.map((r) => r.rule)).toEqual(['patch-part-too-small']);
    expect(repo.observedCapabilities?.()).toMatchObject({ minPatchBytes: 5 * 1024 * 1024 });
    expect(await repo.blobExists(a.descriptor)).toBe(true);
    const before = patchSizes(proxy).length;
    const b = blob(11 * 1024 * 1024, 2);
    await repo.pushBlob(b.descriptor, b.bytes);
    expect(patchSizes(proxy).slice(before)).toEqual([5, 5, 1].map((m) => m * 1024 * 1024));
    expect(proxy.refusals).toHaveLength(1);
  });

  it('ghcr: a PATCH over 4 MiB refused (416) → the blob goes up again in 4 MiB parts', async () => {
    const { repo, proxy } = await via('ghcr', { monolithicUploadMaxBytes: 0, chunkSize: 8 * 1024 * 1024 });
    const a = blob(10 * 1024 * 1024, 3);
    await repo.pushBlob(a.descriptor, a.bytes);
    expect(proxy.refusals.map((r) => r.status)).toEqual([416]);
    expect(repo.observedCapabilities?.()).toMatchObject({ maxPatchBytes: 4 * 1024 * 1024 });
    expect(patchSizes(proxy).slice(1)).toEqual([4, 4, 2].map((m) => m * 1024 * 1024));
    expect(await repo.blobExists(a.descriptor)).toBe(true);
  });

  it('a limit seeded from an earlier run (assumeCapabilities) is used at once: no refusal', async () => {
    const { repo, proxy } = await via('ecr', { monolithicUploadMaxBytes: 0 });
    repo.assumeCapabilities?.({ minPatchBytes: 5 * 1024 * 1024, maxPatchBytes: 1 });
    repo.assumeCapabilities?.({ maxPatchBytes: 64 * 1024 * 1024 });
    const a = blob(7 * 1024 * 1024, 4);
    await repo.pushBlob(a.descriptor, a.bytes);
    expect(proxy.refusals).toEqual([]);
    // Nonsense remembered limits (1 byte, 64 MiB parts) are ignored, not obeyed.
    expect(patchSizes(proxy)).toEqual([5 * 1024 * 1024, 2 * 1024 * 1024]);
  });

  it('a monolithic PUT taken is recorded; harbor: a mount refused outright (401) is not asked again', async () => {
    const { repo, proxy } = await via('harbor');
    const a = blob(300 * 1024, 5);
    await repo.pushBlob(a.descriptor, a.bytes, { mountFrom: ['nowhere/missing'] });
    expect(proxy.refusals.map((r) => r.status)).toEqual([401]);
    const b = blob(300 * 1024, 6);
    await repo.pushBlob(b.descriptor, b.bytes, { mountFrom: ['nowhere/missing'] });
    const mounts = proxy.requests.filter((r) => r.url.includes('mount='));
    expect(mounts).toHaveLength(1);
    expect(repo.observedCapabilities?.()).toMatchObject({ monolithicUpload: true, crossRepoMount: false });
    expect(await repo.blobExists(b.descriptor)).toBe(true);
  });

  it('a mount honoured (201) is recorded and keeps being asked', async () => {
    const { repo: first, proxy } = await via('harbor');
    const a = blob(200 * 1024, 7);
    await first.pushBlob(a.descriptor, a.bytes);
    // Another client through the same proxy: mount from the first repository.
    const { repo } = await via('harbor', {}, proxy);
    const puts = proxy.requests.filter((r) => r.method === 'PUT').length;
    await repo.pushBlob(a.descriptor, a.bytes, { mountFrom: [first.name] });
    expect(proxy.requests.filter((r) => r.url.includes('mount='))).toHaveLength(1);
    expect(proxy.requests.filter((r) => r.method === 'PUT')).toHaveLength(puts);
    expect(repo.observedCapabilities?.()).toMatchObject({ crossRepoMount: true });
  });

  it('probeCapabilities merges what the answers showed with its reads', async () => {
    const { repo } = await via('ghcr');
    const a = blob(100 * 1024, 8);
    await repo.pushBlob(a.descriptor, a.bytes);
    const caps = await repo.probeCapabilities?.({ blob: a.descriptor });
    expect(caps).toMatchObject({ monolithicUpload: true, rangeRequests: true });
    // Plain HTTP: nothing to say about HTTP/2.
    expect(caps?.http2).toBeUndefined();
  });
});

describe('HTTP/2 by ALPN', () => {
  it('a TLS registry (distribution, Go net/http) offers h2; a CA the client does not trust says nothing', async () => {
    const tls = await startRegistry({ mode: 'htpasswd' });
    closers.push(() => tls.close());
    const trusted = createOciClient({
      registry: tls.host,
      caPem: tls.caPem,
      credentials: { username: tls.username, password: tls.password },
      authFiles: null,
      env: {},
    });
    closers.push(() => trusted.close());
    expect((await trusted.repository('learned/tls').probeCapabilities?.())?.http2).toBe(true);
    const untrusted = createOciClient({ registry: tls.host, authFiles: null, env: {} });
    closers.push(() => untrusted.close());
    expect((await untrusted.repository('learned/tls').probeCapabilities?.())?.http2).toBeUndefined();
  });
});
