/**
 * Format version 2 (docs/format.md §11) against the real CNCF distribution registry
 * (docker-registry 2.8.2): the entry conformance suite with `formatVersion: 2` with TLS and token
 * auth, and through the quirk proxy with `ignoreRange` (the registry answers 200 with the whole
 * pack to every ranged GET); then what packs promise on a real registry — a cold save of ~40 MiB
 * in a few pack layers, a warm save after a one-file change pushing < 2 % of the bytes and
 * referencing the cold save's packs where they are, and a restore of that warm entry making one
 * GET per run of adjacent frames (counted on undici's diagnostics channel), byte-identical with
 * and without Range.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createOciBackend, type OciBackend } from '@task-cache/oci';
import { type QuirkProxy, type RegistryFixture, startQuirkProxy, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash } from '../../test/helpers.js';
import { expectedRuns, expectPackingRule, readEntry, type StoredEntry, writeMixed } from '../../test/v2.js';
import { ENTRY_ARTIFACT_TYPE_V2, ENTRY_CONFIG_MEDIA_TYPE_V2, PACK_MEDIA_TYPE } from './format.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';
import type { SaveEntryResult } from './types.js';

const MiB = 1024 * 1024;
const ALL = ['dist/**'];

let reg: RegistryFixture;
let plain: RegistryFixture;
let proxy: QuirkProxy;
let root: string;
const backends: OciBackend[] = [];
let seq = 0;

beforeAll(async () => {
  [reg, plain] = await Promise.all([startRegistry({ mode: 'token' }), startRegistry({ mode: 'anonymous' })]);
  // GHCR's rules (PATCH bodies ≤ 4 MiB: packs are larger) plus a registry ignoring Range.
  proxy = await startQuirkProxy({ upstream: plain.baseUrl, profile: 'ghcr', ignoreRange: true });
  root = await tempDir('tc-v2-registry-');
});
afterAll(async () => {
  for (const b of backends) await b.close();
  await proxy?.close();
  await Promise.all([reg?.close(), plain?.close()]);
  await removeDir(root);
});

function tokenBackend(repo = `v2/r${++seq}`): OciBackend {
  const b = createOciBackend({
    url: reg.ociUrl(repo),
    credentials: { username: reg.username, password: reg.password },
  });
  backends.push(b);
  return b;
}

function viaProxy(repo = `v2/q${++seq}`): OciBackend {
  const b = createOciBackend({
    url: `oci://${proxy.host}/${repo}`,
    plainHttp: true,
    authFiles: null,
    env: {},
  });
  backends.push(b);
  return b;
}

// The suite saves and restores with the default stateDir: keep it out of HOME.
isolateCacheDir();

// NOTE: `small` on both (2 000 files instead of 20 000, 1.5 MB dedup instead of 20 MB): the
// large cases cost 28 s here and move the same bytes per file and per chunk as on the memory
// store, where format-v2.test.ts runs them; the 40 MiB pack cases below are this file's large ones.
entryConformance('registry (token auth, format v2)', async () => ({ store: tokenBackend() }), {
  formatVersion: 2,
  small: true,
});
entryConformance('quirk profile ghcr ignoring Range (format v2)', async () => ({ store: viaProxy() }), {
  formatVersion: 2,
  small: true,
});

async function taskDir(label: string): Promise<string> {
  const d = join(root, `${label}-${++seq}`);
  await mkdir(d, { recursive: true });
  return d;
}

/** The blob GETs undici sends while `fn` runs, to `origin` (method, path, Range header). */
async function blobGets(
  origin: string,
  fn: () => Promise<unknown>,
): Promise<Array<{ path: string; range: string | undefined }>> {
  const seen: Array<{ path: string; range: string | undefined }> = [];
  const onCreate = (message: unknown) => {
    const { request } = message as {
      request: { origin: string | URL; method: string; path: string; headers: string[] | string };
    };
    if (request.method !== 'GET' || String(request.origin).replace(/\/$/, '') !== origin) return;
    if (!/\/blobs\/sha256:[a-f0-9]{64}/.test(request.path)) return;
    let range: string | undefined;
    const h = request.headers;
    if (Array.isArray(h)) {
      for (let i = 0; i + 1 < h.length; i += 2)
        if (String(h[i]).toLowerCase() === 'range') range = String(h[i + 1]);
    } else {
      range = /(?:^|\r\n)range:\s*([^\r\n]*)/i.exec(h)?.[1];
    }
    seen.push({ path: request.path, range });
  };
  subscribe('undici:request:create', onCreate);
  try {
    await fn();
  } finally {
    unsubscribe('undici:request:create', onCreate);
  }
  return seen;
}

/**
 * Cold save of ~40 MiB of mixed outputs, then a warm save after changing the small file in the
 * middle: both checked against docs/format.md §11.
 */
async function coldAndWarm(store: OciBackend, label: string) {
  const src = await taskDir(`${label}-src`);
  const middle = await writeMixed(src, 40);
  const stateDir = await taskDir(`${label}-state`);
  const opts = {
    dir: src,
    generates: ALL,
    task: label,
    stateDir,
    formatVersion: 2 as const,
    // 64 KiB chunks: a one-file change is a few chunks of a 40 MiB entry (with 1 MiB chunks one
    // chunk alone is 2.5 % of it; the < 2 % target of §11 is for 1 GB entries).
    avgChunkSize: 64 * 1024,
  };
  const cold = await saveEntry(store, { ...opts, tag: `${label}-cold`, key: `${label}-cold` });
  const coldEntry = await readEntry(store, `${label}-cold`);
  await writeFile(join(src, middle), seededBytes(10 * 1024, 7001));
  const warm = await saveEntry(store, { ...opts, tag: `${label}-warm`, key: `${label}-warm` });
  const warmEntry = await readEntry(store, `${label}-warm`);
  return { src, cold, coldEntry, warm, warmEntry };
}

function expectColdPacks(cold: SaveEntryResult, entry: StoredEntry): void {
  expect(cold.formatVersion).toBe(2);
  expect(cold.bytesTotal).toBeGreaterThan(40 * MiB);
  expect(cold.bytesTotal).toBeLessThan(41 * MiB);
  expect(cold.chunksPushed).toBe(cold.chunksTotal);
  // At most ⌈size / 16 MiB⌉ packs (§11.1), plus one for the margin the task allows.
  expect(cold.blobsTotal).toBeLessThanOrEqual(Math.ceil((40 * MiB) / (16 * MiB)) + 1);
  expect(cold.blobsTotal).toBeGreaterThanOrEqual(2);
  expect(entry.manifest.artifactType).toBe(ENTRY_ARTIFACT_TYPE_V2);
  expect(entry.manifest.config.mediaType).toBe(ENTRY_CONFIG_MEDIA_TYPE_V2);
  expect(entry.manifest.layers).toHaveLength(cold.blobsTotal);
  for (const l of entry.manifest.layers) expect(l.mediaType).toBe(PACK_MEDIA_TYPE);
  expect(entry.config.formatVersion).toBe(2);
  expect(entry.config.chunks).toHaveLength(cold.chunksTotal);
  expectPackingRule(entry);
}

/** The warm entry reuses every cold pack and points at the cold frames of every unchanged chunk. */
function expectWarmReuse(
  cold: SaveEntryResult,
  coldEntry: StoredEntry,
  warm: SaveEntryResult,
  warmEntry: StoredEntry,
): void {
  expect(warm.formatVersion).toBe(2);
  expect(warm.chunksTotal).toBeGreaterThan(100);
  expect(warm.chunksPushed).toBeGreaterThanOrEqual(1);
  expect(warm.chunksPushed).toBeLessThanOrEqual(3);
  expect(warm.bytesPushed / cold.bytesPushed).toBeLessThan(0.02);
  const coldPacks = coldEntry.manifest.layers.map((l) => l.digest);
  const warmPacks = warmEntry.manifest.layers.map((l) => l.digest);
  for (const d of coldPacks) expect(warmPacks).toContain(d);
  const fresh = warmPacks.filter((d) => !coldPacks.includes(d));
  expect(fresh.length).toBeGreaterThanOrEqual(1);
  expect(fresh.length).toBeLessThanOrEqual(2);
  for (const l of warmEntry.manifest.layers) expect(l.mediaType).toBe(PACK_MEDIA_TYPE);
  // Every chunk the cold entry has is referenced at the same frame of the same pack.
  const coldFrames = new Map(
    coldEntry.config.chunks.map((c) => [
      c.digest,
      { pack: coldPacks[c.layer], offset: c.offset, length: c.length },
    ]),
  );
  let reused = 0;
  for (const c of warmEntry.config.chunks) {
    const was = coldFrames.get(c.digest);
    if (was === undefined) {
      expect(fresh).toContain(warmPacks[c.layer]);
      continue;
    }
    reused++;
    expect({ pack: warmPacks[c.layer], offset: c.offset, length: c.length }).toEqual(was);
  }
  expect(reused).toBeGreaterThanOrEqual(warm.chunksTotal - 3);
}

describe('format v2 packs on the real registry (token auth, TLS)', () => {
  it('40 MiB cold save: few pack layers; one-file warm save: < 2 % pushed, cold packs referenced; warm restore: byte-identical, one GET per run', async () => {
    const store = tokenBackend();
    const { src, cold, coldEntry, warm, warmEntry } = await coldAndWarm(store, 'packs');
    expectColdPacks(cold, coldEntry);
    expectWarmReuse(cold, coldEntry, warm, warmEntry);

    const dst = await taskDir('packs-dst');
    let restored: Awaited<ReturnType<typeof restoreEntry>>;
    const gets = await blobGets(reg.baseUrl, async () => {
      restored = await restoreEntry(store, { dir: dst, generates: ALL, tag: 'packs-warm', stateDir: false });
    });
    expect(restored!.chunksFetched).toBe(warm.chunksTotal);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    // One GET for the config, then one per run (§11.3): a Range unless the run is the whole pack.
    const config = gets.filter((g) => g.path.endsWith(warmEntry.manifest.config.digest));
    expect(config).toHaveLength(1);
    const packGets = gets.filter((g) => !g.path.endsWith(warmEntry.manifest.config.digest));
    const runs = expectedRuns(warmEntry);
    expect(packGets).toHaveLength(runs.length);
    expect(packGets.length).toBeLessThan(warm.chunksTotal / 10);
    expect(packGets.length).toBeLessThan(warmEntry.manifest.layers.length * warm.chunksTotal);
    const ranged = runs.filter((r) => !r.whole);
    // The changed chunks cut the cold pack they lived in: parts of a pack are fetched.
    expect(ranged.length).toBeGreaterThan(0);
    expect(packGets.map((g) => g.range).sort()).toEqual(
      runs.map((r) => (r.whole ? undefined : `bytes=${r.offset}-${r.offset + r.length - 1}`)).sort(),
    );
  }, 120_000);
});

describe('format v2 packs through a registry that ignores Range (quirk proxy, ghcr)', () => {
  it('the warm entry restores byte-identical when every ranged GET is answered 200 with the whole pack', async () => {
    const store = viaProxy();
    const { src, cold, coldEntry, warm, warmEntry } = await coldAndWarm(store, 'norange');
    expectColdPacks(cold, coldEntry);
    expectWarmReuse(cold, coldEntry, warm, warmEntry);
    const runs = expectedRuns(warmEntry);
    const ranged = runs.filter((r) => !r.whole);
    expect(ranged.length).toBeGreaterThan(0);
    const before = proxy.refusals.filter((r) => r.rule === 'range-ignored').length;

    // Outputs already there are replaced (the restore's swap), as with Range.
    const dst = await taskDir('norange-dst');
    await mkdir(join(dst, 'dist'), { recursive: true });
    await writeFile(join(dst, 'dist/stale.txt'), 'stale');
    const restored = await restoreEntry(store, {
      dir: dst,
      generates: ALL,
      tag: 'norange-warm',
      stateDir: false,
    });
    expect(restored?.chunksFetched).toBe(warm.chunksTotal);
    expect(restored?.removed).toBe(1);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    // Every ranged run was sent with Range and answered with the whole pack (the rule fired).
    const ignored = proxy.refusals.filter((r) => r.rule === 'range-ignored').length - before;
    expect(ignored).toBe(ranged.length);
    // (The inline path, an entry below `inlineBelow`, reads 200 answers in the conformance cases
    // above: their warm entries of 1.5 MB restore inline through this proxy.)
  }, 120_000);
});
