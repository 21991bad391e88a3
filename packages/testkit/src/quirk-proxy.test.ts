/**
 * Each rule of each quirk profile fires on the raw distribution API (against the real CNCF
 * registry behind the proxy), and what a profile does not name passes through unchanged. The
 * entry-level runs through every profile are in packages/core/src/entry/registries.test.ts.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simpleRequest } from './http.js';
import { type QuirkProfile, type QuirkProxy, startQuirkProxy } from './quirk-proxy.js';
import { type RegistryFixture, startRegistry } from './registry.js';

let reg: RegistryFixture;
const open: QuirkProxy[] = [];
beforeAll(async () => {
  reg = await startRegistry({ mode: 'anonymous' });
});
afterAll(async () => {
  for (const p of open) await p.close();
  await reg?.close();
});

async function proxy(
  profile: QuirkProfile,
  extra: Record<string, number | boolean> = {},
): Promise<QuirkProxy> {
  const p = await startQuirkProxy({ upstream: reg.baseUrl, profile, ...extra });
  open.push(p);
  return p;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes `bytes` as a blob monolithically through `p` (POST + PUT). */
async function pushBlob(p: QuirkProxy, repo: string, bytes: Buffer): Promise<number> {
  const start = await simpleRequest(`${p.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(start.status).toBe(202);
  const loc = new URL(String(start.headers.location), p.url);
  loc.searchParams.set('digest', sha(bytes));
  const put = await simpleRequest(loc, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  return put.status;
}

async function putManifest(p: QuirkProxy, repo: string, tag: string, doc: unknown) {
  return simpleRequest(`${p.url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: JSON.stringify(doc),
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
}

function manifest(config: Buffer, configType: string, layer: Buffer, artifactType?: string) {
  return {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...(artifactType ? { artifactType } : {}),
    config: { mediaType: configType, digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.example.chunk', digest: sha(layer), size: layer.length }],
  };
}

async function patchSession(p: QuirkProxy, repo: string) {
  const start = await simpleRequest(`${p.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  return new URL(String(start.headers.location), p.url);
}

describe('quirk proxy profiles', () => {
  for (const profile of ['gitlab', 'quay'] as const) {
    it(`${profile}: unknown artifactType or config media type → 400 MANIFEST_INVALID; image config, custom layers pass`, async () => {
      const p = await proxy(profile);
      const config = Buffer.from('{}');
      const layer = Buffer.from(`layer ${profile}`);
      expect(await pushBlob(p, 'allow/x', config)).toBe(201);
      expect(await pushBlob(p, 'allow/x', layer)).toBe(201);
      const custom = await putManifest(
        p,
        'allow/x',
        'a',
        manifest(config, 'application/vnd.example.config+json', layer),
      );
      expect(custom.status).toBe(400);
      expect(custom.json()).toMatchObject({
        errors: [
          { code: 'MANIFEST_INVALID', detail: 'unknown media type: application/vnd.example.config+json' },
        ],
      });
      const artifact = await putManifest(
        p,
        'allow/x',
        'b',
        manifest(config, 'application/vnd.oci.image.config.v1+json', layer, 'application/vnd.example.v1'),
      );
      expect(artifact.status).toBe(400);
      const image = await putManifest(
        p,
        'allow/x',
        'c',
        manifest(config, 'application/vnd.oci.image.config.v1+json', layer),
      );
      expect(image.status).toBe(201);
      expect(p.refusals.map((r) => r.rule)).toEqual(['media-type-allowlist', 'media-type-allowlist']);
    });
  }

  it('quay: a mount without from is refused; with from it reaches the registry', async () => {
    const p = await proxy('quay');
    const blob = Buffer.from('quay mount');
    await pushBlob(p, 'quay/src', blob);
    const bare = await simpleRequest(`${p.url}/v2/quay/dst/blobs/uploads/?mount=${sha(blob)}`, {
      method: 'POST',
    });
    expect(bare.status).toBe(400);
    const from = await simpleRequest(`${p.url}/v2/quay/dst/blobs/uploads/?mount=${sha(blob)}&from=quay/src`, {
      method: 'POST',
    });
    expect(from.status).toBe(201);
  });

  it('ghcr: a PATCH over 4 MiB → 416; completed pushes beyond the budget → 429 with Retry-After', async () => {
    const p = await proxy('ghcr', { layerPushesPerWindow: 2, rateWindowMs: 60_000 });
    const loc = await patchSession(p, 'ghcr/x');
    const big = await simpleRequest(loc, {
      method: 'PATCH',
      body: Buffer.alloc(4 * 1024 * 1024 + 1),
      headers: { 'content-range': `0-${4 * 1024 * 1024}`, 'content-type': 'application/octet-stream' },
    });
    expect(big.status).toBe(416);
    expect(await pushBlob(p, 'ghcr/x', Buffer.from('1'))).toBe(201);
    expect(await pushBlob(p, 'ghcr/x', Buffer.from('2'))).toBe(201);
    const start = await simpleRequest(`${p.url}/v2/ghcr/x/blobs/uploads/`, { method: 'POST' });
    const loc3 = new URL(String(start.headers.location), p.url);
    loc3.searchParams.set('digest', sha(Buffer.from('3')));
    const third = await simpleRequest(loc3, { method: 'PUT', body: '3' });
    expect(third.status).toBe(429);
    expect(Number(third.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('ecr: a part after a part under 5 MiB → 400; over the layer limit → 400; mount of an unreferenced blob → 202', async () => {
    const p = await proxy('ecr', { maxLayers: 1 });
    const loc = await patchSession(p, 'ecr/x');
    const first = await simpleRequest(loc, {
      method: 'PATCH',
      body: 'small',
      headers: { 'content-range': '0-4' },
    });
    expect(first.status).toBe(202);
    const next = new URL(String(first.headers.location), p.url);
    const second = await simpleRequest(next, {
      method: 'PATCH',
      body: 'more',
      headers: { 'content-range': '5-8' },
    });
    expect(second.status).toBe(400);
    const config = Buffer.from('{}');
    const layer = Buffer.from('ecr layer');
    await pushBlob(p, 'ecr/x', config);
    await pushBlob(p, 'ecr/x', layer);
    const mount = await simpleRequest(`${p.url}/v2/ecr/y/blobs/uploads/?mount=${sha(layer)}&from=ecr/x`, {
      method: 'POST',
    });
    expect(mount.status).toBe(202);
    const two = manifest(config, 'application/vnd.oci.image.config.v1+json', layer);
    const tooMany = await putManifest(p, 'ecr/x', 'two', { ...two, layers: [...two.layers, ...two.layers] });
    expect(tooMany.status).toBe(400);
    expect((await putManifest(p, 'ecr/x', 'one', two)).status).toBe(201);
    // Referenced by a manifest now: the mount goes through.
    const mounted = await simpleRequest(`${p.url}/v2/ecr/y/blobs/uploads/?mount=${sha(layer)}&from=ecr/x`, {
      method: 'POST',
    });
    expect(mounted.status).toBe(201);
    expect(p.refusals.map((r) => r.rule)).toEqual([
      'patch-part-too-small',
      'mount-unreferenced',
      'layer-cap',
    ]);
  });

  it('harbor: an out-of-order chunk → 416; a mount from a missing repository → 401', async () => {
    const p = await proxy('harbor');
    const loc = await patchSession(p, 'harbor/x');
    const skip = await simpleRequest(loc, {
      method: 'PATCH',
      body: 'late',
      headers: { 'content-range': '10-13' },
    });
    expect(skip.status).toBe(416);
    const inOrder = await simpleRequest(loc, {
      method: 'PATCH',
      body: 'first',
      headers: { 'content-range': '0-4' },
    });
    expect(inOrder.status).toBe(202);
    const missing = await simpleRequest(
      `${p.url}/v2/harbor/x/blobs/uploads/?mount=${sha(Buffer.from('z'))}&from=nowhere/repo`,
      {
        method: 'POST',
      },
    );
    expect(missing.status).toBe(401);
    expect(p.refusals.map((r) => r.rule)).toEqual(['out-of-order-chunk', 'mount-missing-repository']);
  });

  it('ignoreRange: a blob GET with Range gets 200 and the whole blob; without the option, 206', async () => {
    const blob = Buffer.from('0123456789 range me');
    const plain = await proxy('harbor');
    expect(await pushBlob(plain, 'range/x', blob)).toBe(201);
    const asked = { headers: { range: 'bytes=2-5' } };
    const honoured = await simpleRequest(`${plain.url}/v2/range/x/blobs/${sha(blob)}`, asked);
    expect(honoured.status).toBe(206);
    expect(honoured.body.toString()).toBe('2345');
    expect(plain.refusals).toEqual([]);

    const p = await proxy('harbor', { ignoreRange: true });
    const ignored = await simpleRequest(`${p.url}/v2/range/x/blobs/${sha(blob)}`, asked);
    expect(ignored.status).toBe(200);
    expect(ignored.body).toEqual(blob);
    // A GET without Range is not a rule firing.
    expect((await simpleRequest(`${p.url}/v2/range/x/blobs/${sha(blob)}`)).status).toBe(200);
    expect(p.refusals.map((r) => [r.rule, r.status])).toEqual([['range-ignored', 200]]);
  });
});
