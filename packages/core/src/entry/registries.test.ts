/**
 * Entries through the quirk proxy of `@task-cache/testkit` in front of the REAL CNCF registry
 * (docker-registry 2.8.2): every profile (gitlab, quay, ghcr, ecr, harbor) runs the entry
 * conformance suite, and the compatible form is checked where it matters — the fallback after
 * GitLab's refusal, `?format=compat`, garbage collection and skopeo. The conformance cases run
 * with their `small` sizes here (the 300 MB cases run against the plain registry in
 * registry.test.ts; `TASK_CACHE_QUIRKS_BIG=1` runs them through every profile): five profiles ×
 * big cases would cost minutes.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createOciBackend, descriptorOf, type OciBackend, TooManyRequestsError } from '@task-cache/oci';
import {
  QUIRK_PROFILES,
  type QuirkProfile,
  type QuirkProxy,
  type RegistryFixture,
  startQuirkProxy,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { formatEvent } from '../events/format.js';
import type { CacheEvent } from '../events/types.js';
import { rememberRegistry } from '../internal/registry-state.js';
import { createCache } from '../run/cache.js';
import { COMPAT_CONFIG_MEDIA_TYPE, ENTRY_ANNOTATION, ENTRY_ARTIFACT_TYPE } from './format.js';
import { lookupEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

const run = promisify(execFile);
const ALL = ['dist/**'];

let reg: RegistryFixture;
let root: string;
const proxies = new Map<QuirkProfile, QuirkProxy>();
const backends: OciBackend[] = [];
let seq = 0;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'anonymous' });
  root = await tempDir('tc-quirks-');
  for (const profile of QUIRK_PROFILES) {
    proxies.set(profile, await startQuirkProxy({ upstream: reg.baseUrl, profile }));
  }
});
afterAll(async () => {
  for (const b of backends) await b.close();
  for (const p of proxies.values()) await p.close();
  await reg?.close();
  await removeDir(root);
});

// The suite saves with the default stateDir (where refusals are remembered): keep it out of HOME.
isolateCacheDir();

function via(proxy: { host: string }, repo = `quirks/r${++seq}`): OciBackend {
  const b = createOciBackend({
    url: `oci://${proxy.host}/${repo}`,
    plainHttp: true,
    authFiles: null,
    env: {},
  });
  backends.push(b);
  return b;
}
const direct = (repo: string) => via({ host: reg.host }, repo);

async function taskDir(files: Record<string, string | Uint8Array>): Promise<string> {
  const d = join(root, `t${++seq}`);
  await mkdir(d, { recursive: true });
  await writeTree(d, files);
  return d;
}

async function manifestOf(store: OciBackend, tag: string): Promise<Record<string, unknown>> {
  return JSON.parse(Buffer.from((await store.fetchManifest(tag))!.bytes).toString());
}

// NOTE: opt-in (`TASK_CACHE_QUIRKS_BIG=1`): the suite's big cases (300 MB file, 200 MB dedup)
// through every profile; minutes, so not in CI.
const big = process.env.TASK_CACHE_QUIRKS_BIG === '1';
for (const profile of QUIRK_PROFILES) {
  entryConformance(`quirk profile ${profile}`, async () => ({ store: via(proxies.get(profile)!) }), {
    small: !big,
    big,
    gigabyte: true,
    ...(profile === 'gitlab' || profile === 'quay' ? { form: 'compat' as const } : {}),
  });
}

describe('the compatible form', () => {
  it('gitlab profile: the default save is refused in the standard form, stored in the compatible one in the same call, remembered, and restores', async () => {
    const proxy = await startQuirkProxy({ upstream: reg.baseUrl, profile: 'gitlab' });
    try {
      const stateDir = await tempDir('tc-quirks-state-');
      const store = via(proxy);
      const src = await taskDir({ 'dist/a.bin': seededBytes(300 * 1024, 1701), 'dist/b.txt': 'b' });
      const fallbacks: unknown[] = [];
      const opts = {
        dir: src,
        generates: ALL,
        task: 't',
        stateDir,
        onFallback: (i: unknown) => fallbacks.push(i),
      };
      const saved = await saveEntry(store, { ...opts, tag: 'e1', key: 'e1' });
      expect(saved.form).toBe('compat');
      expect(fallbacks).toEqual([
        { registry: proxy.host, from: 'standard', to: 'compat', code: 'MANIFEST_INVALID' },
      ]);
      // The probe's referrers GET is answered 404 by the profile too: count only the allowlist.
      const allowlist = () => proxy.refusals.filter((r) => r.rule === 'media-type-allowlist');
      expect(allowlist()).toHaveLength(1);
      const manifest = await manifestOf(store, 'e1');
      expect(manifest.artifactType).toBeUndefined();
      expect((manifest.config as { mediaType: string }).mediaType).toBe(COMPAT_CONFIG_MEDIA_TYPE);
      expect((manifest.annotations as Record<string, string>)[ENTRY_ANNOTATION]).toBe(ENTRY_ARTIFACT_TYPE);
      // The refusal is in the state dir: the next save goes straight to the compatible form.
      expect((await readdir(join(stateDir, 'registries'))).length).toBe(1);
      const again = await saveEntry(store, { ...opts, tag: 'e2', key: 'e2' });
      expect(again.form).toBe('compat');
      expect(fallbacks).toHaveLength(1);
      expect(allowlist()).toHaveLength(1);
      // The capabilities were probed once (reads only), remembered with the form the registry took.
      const [file] = await readdir(join(stateDir, 'registries'));
      const state = JSON.parse(await readFile(join(stateDir, 'registries', file!), 'utf8'));
      expect(state.registry).toBe(proxy.host);
      // Reads (referrers, Range) and what the save's answers showed (a monolithic PUT taken).
      expect(state.capabilities.values).toEqual({
        referrers: false,
        rangeRequests: true,
        monolithicUpload: true,
        standardForm: false,
      });
      expect(Date.parse(state.capabilities.until)).toBeGreaterThan(Date.now());
      expect(proxy.requests.filter((r) => r.url.includes('/referrers/'))).toHaveLength(1);
      // A reader does not need to know the form.
      const entry = await lookupEntry(store, { tag: 'e1' });
      expect(entry?.configDescriptor.mediaType).toBe(COMPAT_CONFIG_MEDIA_TYPE);
      const dst = await taskDir({});
      await restoreEntry(store, { dir: dst, generates: ALL, entry: entry! });
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      await removeDir(stateDir);
    } finally {
      await proxy.close();
    }
  });

  it('the compatible image config carries the image-spec required fields, one DiffID per chunk', async () => {
    const store = direct('compat/config');
    const src = await taskDir({ 'dist/x.bin': seededBytes(200 * 1024, 1702) });
    await saveEntry(store, {
      dir: src,
      generates: ALL,
      tag: 'c',
      task: 't',
      key: 'c',
      format: 'compat',
      avgChunkSize: 16 * 1024,
      stateDir: false,
    });
    const manifest = await manifestOf(store, 'c');
    const layers = manifest.layers as unknown[];
    const config = manifest.config as { digest: string; size: number; mediaType: string };
    const chunks: Buffer[] = [];
    for await (const p of await store.fetchBlob(config)) chunks.push(Buffer.from(p));
    const doc = JSON.parse(Buffer.concat(chunks).toString());
    expect(doc.architecture).toBe('unknown');
    expect(doc.os).toBe('unknown');
    expect(doc.rootfs.type).toBe('layers');
    expect(doc.rootfs.diff_ids).toEqual(doc.chunks.map((c: { digest: string }) => c.digest));
    expect(doc.rootfs.diff_ids).toHaveLength(layers.length);
    expect(doc.formatVersion).toBe(1);
  });

  it('the compatible index form round-trips through the gitlab profile', async () => {
    const store = via(proxies.get('gitlab')!, 'compat/index');
    const src = await taskDir({ 'dist/data.bin': seededBytes(200 * 1024, 1703) });
    const saved = await saveEntry(store, {
      dir: src,
      generates: ALL,
      tag: 'idx',
      task: 't',
      key: 'idx',
      avgChunkSize: 4096,
      layerCap: 8,
      format: 'compat',
      stateDir: false,
    });
    expect(saved.chunksTotal).toBeGreaterThan(16);
    const index = await manifestOf(store, 'idx');
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.artifactType).toBeUndefined();
    const dst = await taskDir({});
    expect((await restoreEntry(store, { dir: dst, generates: ALL, tag: 'idx' }))?.digest).toBe(saved.digest);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
  });

  it('a compatible entry sharing chunks with a deleted one restores after GC --delete-untagged', async () => {
    const store = via(proxies.get('gitlab')!, 'compat/gc');
    const shared = seededBytes(256 * 1024, 1710);
    const a = await taskDir({ 'dist/s.bin': shared, 'dist/a': 'a' });
    const b = await taskDir({ 'dist/s.bin': shared, 'dist/b': 'b' });
    const opts = {
      generates: ALL,
      task: 't',
      avgChunkSize: 16 * 1024,
      format: 'compat',
      stateDir: false,
    } as const;
    const sa = await saveEntry(store, { ...opts, dir: a, tag: 'ga', key: 'ga' });
    const sb = await saveEntry(store, { ...opts, dir: b, tag: 'gb', key: 'gb' });
    await store.deleteManifest(sa.digest);
    await reg.garbageCollect({ deleteUntagged: true });
    const dst = await taskDir({});
    expect((await restoreEntry(store, { dir: dst, generates: ALL, tag: 'gb' }))?.digest).toBe(sb.digest);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(b, 'dist'));
    expect(await restoreEntry(store, { dir: await taskDir({}), generates: ALL, tag: 'ga' })).toBeUndefined();
  });

  it('a cached run against the gitlab profile: one informational event, no warning, and the next run restores', async () => {
    const proxy = await startQuirkProxy({ upstream: reg.baseUrl, profile: 'gitlab' });
    try {
      const stateDir = await tempDir('tc-quirks-run-');
      const dir = await taskDir({ 'src/main.c': 'int main() { return 0; }\n' });
      const events: CacheEvent[] = [];
      const url = `oci://${proxy.host}/quirks/run?plain-http=true`;
      const build = async () => {
        await writeTree(dir, { 'dist/app': seededBytes(100 * 1024, 1704) });
      };
      const task = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
      const cache = createCache({
        store: url,
        lock: false,
        env: {},
        stateDir,
        onEvent: (e) => events.push(e),
      });
      const first = await cache.run(task, build);
      await cache.close();
      expect(events.filter((e) => e.type === 'warning')).toEqual([]);
      const notes = events.filter((e) => e.type === 'format-fallback');
      expect(notes).toHaveLength(1);
      expect(formatEvent(notes[0]!)).toContain('refused the standard entry form (MANIFEST_INVALID)');
      expect(events.some((e) => e.type === 'saved')).toBe(true);
      void first;
      await removeDir(join(dir, 'dist'));
      const events2: CacheEvent[] = [];
      const cache2 = createCache({
        store: url,
        lock: false,
        env: {},
        stateDir,
        onEvent: (e) => events2.push(e),
      });
      await cache2.run(task, async () => {
        throw new Error('must restore, not build');
      });
      await cache2.close();
      expect(events2.map((e) => e.type)).toContain('restored');
      expect(await readFile(join(dir, 'dist/app'))).toEqual(seededBytes(100 * 1024, 1704));
      await removeDir(stateDir);
    } finally {
      await proxy.close();
    }
  });

  it('a ?format=compat store URL never tries the standard form', async () => {
    const proxy = await startQuirkProxy({ upstream: reg.baseUrl, profile: 'gitlab' });
    try {
      const stateDir = await tempDir('tc-quirks-url-');
      const dir = await taskDir({ 'src/main.c': 'int x;\n' });
      const events: CacheEvent[] = [];
      const cache = createCache({
        store: `oci://${proxy.host}/quirks/url?plain-http=true&format=compat`,
        lock: false,
        env: {},
        stateDir,
        onEvent: (e) => events.push(e),
      });
      await cache.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, async () => {
        await writeTree(dir, { 'dist/out': 'out' });
      });
      await cache.close();
      expect(events.some((e) => e.type === 'saved')).toBe(true);
      expect(events.filter((e) => e.type === 'format-fallback' || e.type === 'warning')).toEqual([]);
      const puts = proxy.requests.filter((r) => r.method === 'PUT' && r.url.includes('/manifests/'));
      expect(puts.length).toBeGreaterThan(0);
      expect(proxy.refusals.filter((r) => r.rule === 'media-type-allowlist')).toEqual([]);
      await removeDir(stateDir);
    } finally {
      await proxy.close();
    }
  });

  it('format standard fails at a refusal (no fallback), with the typed registry error', async () => {
    const store = via(proxies.get('gitlab')!);
    const src = await taskDir({ 'dist/a': 'a' });
    await expect(
      saveEntry(store, {
        dir: src,
        generates: ALL,
        tag: 's',
        task: 't',
        key: 's',
        format: 'standard',
        stateDir: false,
      }),
    ).rejects.toMatchObject({ code: 'OCI_ERR_MANIFEST_INVALID' });
  });
});

describe('registry rules the profiles reproduce', () => {
  it('ghcr: 429 with Retry-After slows the save down instead of failing it', async () => {
    const proxy = await startQuirkProxy({
      upstream: reg.baseUrl,
      profile: 'ghcr',
      layerPushesPerWindow: 4,
      rateWindowMs: 2000,
    });
    try {
      const store = via(proxy);
      const src = await taskDir({ 'dist/a.bin': seededBytes(96 * 1024, 1705) });
      const saved = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag: 'rl',
        task: 't',
        key: 'rl',
        avgChunkSize: 8 * 1024,
        stateDir: false,
        concurrency: 2,
        // Version 1: a blob per chunk, ~12 uploads against 4 per window; version 2 packs them in one.
        formatVersion: 1,
      });
      expect(saved.chunksPushed).toBeGreaterThan(4);
      expect(proxy.refusals.some((r) => r.rule === 'rate-limit' && r.status === 429)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('ghcr: a 429 with Retry-After on a pack upload slows a version 2 save down instead of failing it', async () => {
    const proxy = await startQuirkProxy({
      upstream: reg.baseUrl,
      profile: 'ghcr',
      layerPushesPerWindow: 2,
      rateWindowMs: 2000,
    });
    try {
      const store = via(proxy);
      // Another upload took the window's tokens: the save's first upload, its pack, is refused.
      for (const seed of [1711, 1712]) {
        const bytes = seededBytes(1024, seed);
        await store.pushBlob(descriptorOf(bytes, 'application/octet-stream'), bytes);
      }
      // Above the inline threshold (4 MiB), the pack is spooled to a file, as every real pack is,
      // and its upload starts again from there.
      const src = await taskDir({ 'dist/a.bin': seededBytes(5 * 1024 * 1024, 1713) });
      const saved = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag: 'rl-v2',
        task: 't',
        key: 'rl-v2',
        avgChunkSize: 64 * 1024,
        stateDir: false,
        formatVersion: 2,
      });
      expect(saved.formatVersion).toBe(2);
      expect(saved.blobsTotal).toBe(1);
      expect(saved.chunksPushed).toBe(saved.chunksTotal);
      const [pack] = (await manifestOf(store, 'rl-v2')).layers as { digest: string }[];
      const hex = pack!.digest.slice('sha256:'.length);
      expect(
        proxy.refusals.some((r) => r.rule === 'rate-limit' && r.status === 429 && r.url.includes(hex)),
      ).toBe(true);
      const dst = await taskDir({});
      expect((await restoreEntry(store, { dir: dst, generates: ALL, tag: 'rl-v2' }))?.digest).toBe(
        saved.digest,
      );
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    } finally {
      await proxy.close();
    }
  });

  it('ghcr: a 429 that does not let up fails the save with a typed error', async () => {
    const proxy = await startQuirkProxy({
      upstream: reg.baseUrl,
      profile: 'ghcr',
      layerPushesPerWindow: 1,
      rateWindowMs: 3_600_000,
    });
    try {
      const store = via(proxy);
      const src = await taskDir({ 'dist/a.bin': seededBytes(64 * 1024, 1706) });
      await expect(
        saveEntry(store, {
          dir: src,
          generates: ALL,
          tag: 'rl2',
          task: 't',
          key: 'rl2',
          avgChunkSize: 8 * 1024,
          stateDir: false,
        }),
      ).rejects.toBeInstanceOf(TooManyRequestsError);
    } finally {
      await proxy.close();
    }
  });

  it('ecr: a manifest over the layer limit is refused; the save halves the layer cap until the registry takes it, remembers that cap, and the next save writes it at once', async () => {
    // The profile's limit is lowered to 40 layers here so the case needs ~100 chunks, not 1 000.
    const proxy = await startQuirkProxy({ upstream: reg.baseUrl, profile: 'ecr', maxLayers: 40 });
    try {
      const store = via(proxy);
      const stateDir = await tempDir('tc-quirks-state-');
      const src = await taskDir({ 'dist/a.bin': seededBytes(100 * 1024, 1707) });
      const opts = {
        dir: src,
        generates: ALL,
        task: 't',
        avgChunkSize: 1024,
        stateDir,
        layerCap: 500,
        // Version 1: a layer per chunk passes the limit with ~100 chunks; version 2 would need
        // over 32 packs of 16+ MiB (the halving stops at 32 layers).
        formatVersion: 1,
      } as const;
      const capRefusals = () => proxy.refusals.filter((r) => r.rule === 'layer-cap').length;
      const saved = await saveEntry(store, { ...opts, tag: 'many', key: 'many' });
      expect(saved.chunksTotal).toBeGreaterThan(64);
      // Refused whole (both forms), then as an index of 50-layer manifests; taken with 32.
      expect(saved.form).toBe('standard');
      expect(capRefusals()).toBe(3);
      const manifest = await manifestOf(store, 'many');
      expect(manifest.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      for (const child of manifest.manifests as { digest: string }[]) {
        expect(((await manifestOf(store, child.digest)).layers as unknown[]).length).toBeLessThanOrEqual(32);
      }
      const [file] = await readdir(join(stateDir, 'registries'));
      const state = JSON.parse(await readFile(join(stateDir, 'registries', file!), 'utf8'));
      expect(state.capabilities.values).toMatchObject({
        maxLayers: 32,
        standardForm: true,
        monolithicUpload: true,
      });
      // The next save knows the cap: no refusal.
      const again = await saveEntry(store, { ...opts, tag: 'many2', key: 'many2' });
      expect(again.chunksTotal).toBe(saved.chunksTotal);
      expect(capRefusals()).toBe(3);
      const dst = await taskDir({});
      await restoreEntry(store, { dir: dst, generates: ALL, tag: 'many2', stateDir: false });
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      // Without a state dir and with a cap the registry refuses in every form down to 32 layers
      // (here: 20), the save fails typed.
      const strict = await startQuirkProxy({ upstream: reg.baseUrl, profile: 'ecr', maxLayers: 20 });
      try {
        await expect(
          saveEntry(via(strict), { ...opts, stateDir: false, tag: 'many3', key: 'many3' }),
        ).rejects.toMatchObject({ code: 'OCI_ERR_MANIFEST_INVALID' });
      } finally {
        await strict.close();
      }
    } finally {
      await proxy.close();
    }
  });
});

describe('remembered capabilities', () => {
  it('a remembered layer cap below the adaptive floor of 32 (a tampered state file) is ignored', async () => {
    const stateDir = await tempDir('tc-quirks-state-');
    const store = direct('quirks/tampered');
    const now = Date.now();
    await rememberRegistry(stateDir, store.location, {
      capabilities: {
        values: { maxLayers: 1, minPatchBytes: 1 },
        at: new Date(now).toISOString(),
        until: new Date(now + 3_600_000).toISOString(),
      },
    });
    const src = await taskDir({ 'dist/a.bin': seededBytes(20 * 1024, 1709) });
    const saved = await saveEntry(store, {
      dir: src,
      generates: ALL,
      task: 't',
      tag: 'x',
      key: 'x',
      avgChunkSize: 1024,
      stateDir,
      // Version 1: ~20 chunk layers, an index if the cap of 1 were taken; version 2 is one pack.
      formatVersion: 1,
    });
    expect(saved.chunksTotal).toBeGreaterThan(5);
    expect((await manifestOf(store, 'x')).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    await removeDir(stateDir);
  });
});

async function skopeo(...args: string[]): Promise<Buffer> {
  const { stdout } = await run('skopeo', args, { encoding: 'buffer', timeout: 60_000, maxBuffer: 64 << 20 });
  return stdout;
}

describe('skopeo 1.9.3 on both forms', () => {
  for (const format of ['standard', 'compat'] as const) {
    it(`${format}: inspect --raw returns our manifest byte-identical, copy to another repository keeps the digest and the copy restores`, async () => {
      const store = direct(`skopeo/${format}`);
      const src = await taskDir({ 'dist/a.bin': seededBytes(150 * 1024, 1708), 'dist/b': 'b' });
      const saved = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag: 'e',
        task: 't',
        key: 'e',
        format,
        avgChunkSize: 16 * 1024,
        stateDir: false,
      });
      const ref = `docker://${reg.host}/skopeo/${format}`;
      const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `${ref}:e`);
      expect(raw.equals(Buffer.from((await store.fetchManifest('e'))!.bytes))).toBe(true);
      const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', ref)).toString()).Tags;
      expect(tags).toContain('e');
      await skopeo(
        'copy',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        '--preserve-digests',
        `${ref}:e`,
        `${ref}-copy:e`,
      );
      const copy = direct(`skopeo/${format}-copy`);
      const dst = await taskDir({});
      expect((await restoreEntry(copy, { dir: dst, generates: ALL, tag: 'e' }))?.digest).toBe(saved.digest);
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    });
  }
});
