/**
 * Entries against the real CNCF distribution registry (docker-registry 2.8.2) with TLS and token
 * auth, through the testkit fixture: the conformance suite (the default format version with the
 * big cases, version 1 with the small ones), garbage collection safety, and restores interrupted
 * by the registry going away — the last two in both format versions.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createOciBackend, type OciBackend } from '@task-cache/oci';
import { type RegistryFixture, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { expectedRuns, readEntry } from '../../test/v2.js';
import { OCI_INDEX_MEDIA_TYPE } from './format.js';
import { hasEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';
import type { SaveEntryResult } from './types.js';

let reg: RegistryFixture;
let root: string;
const backends: OciBackend[] = [];
let repoSeq = 0;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'token' });
  root = await tempDir('tc-registry-');
});
afterAll(async () => {
  for (const b of backends) await b.close();
  await reg?.close();
  await removeDir(root);
});

function backend(repo = `entries/r${++repoSeq}`): OciBackend {
  const b = createOciBackend({
    url: reg.ociUrl(repo),
    credentials: { username: reg.username, password: reg.password },
  });
  backends.push(b);
  return b;
}

// The conformance suite saves and restores with the default stateDir: keep it out of HOME.
isolateCacheDir();

entryConformance('registry (token auth)', async () => ({ store: backend() }), { big: true });
// Version 1 is still written on request (and read everywhere): the same suite, small sizes.
entryConformance('registry v1 (token auth)', async () => ({ store: backend() }), {
  formatVersion: 1,
  small: true,
});

const ALL = ['dist/**'];
let dirSeq = 0;
async function taskDir(): Promise<string> {
  const d = join(root, `t${++dirSeq}`);
  await mkdir(d, { recursive: true });
  return d;
}

const KiB = 1024;
const MiB = 1024 * KiB;

describe('garbage collection safety (real registry)', () => {
  // How the newer entry B holds the chunks it shares with the older entry A, deleted before GC.
  const sharing = [
    // Version 1: the same chunk blobs are layers of both.
    { formatVersion: 1, layout: 'blobs', shared: 2 * MiB, only: 256 * KiB },
    // Version 2, B saved warm on A: A's one pack is a layer of B, which reads its shared chunks'
    // frames there (B uses most of it, so keeps it).
    { formatVersion: 2, layout: 'pack', shared: 2 * MiB, only: 256 * KiB },
    // Version 2, B saved warm on A but using less than half of A's pack: B copies its frames out
    // into a pack of its own (repacking, docs/format.md §11.4), and A's pack is A's alone.
    { formatVersion: 2, layout: 'repacked', shared: 256 * KiB, only: 2 * MiB },
  ] as const;
  it.each(
    sharing,
  )('an entry sharing chunks with a deleted one still restores after GC, with and without --delete-untagged (version $formatVersion, $layout)', async ({
    formatVersion,
    layout,
    shared: sharedSize,
    only,
  }) => {
    const store = backend(`gc/shared-${layout}`);
    const a = await taskDir();
    const b = await taskDir();
    const shared = seededBytes(sharedSize, 1011);
    await writeTree(a, { 'dist/shared.bin': shared, 'dist/only-a.bin': seededBytes(only, 1012) });
    await writeTree(b, { 'dist/shared.bin': shared, 'dist/only-b.bin': seededBytes(only, 1013) });
    const opts = { generates: ALL, task: 't', avgChunkSize: 64 * KiB, formatVersion };
    const sa = await saveEntry(store, { ...opts, dir: a, tag: 'entry-a', key: 'entry-a' });
    // B's base is A (the task's pointer): version 2 reuses A's frames where they are.
    const sb = await saveEntry(store, { ...opts, dir: b, tag: 'entry-b', key: 'entry-b' });
    expect([sa.formatVersion, sb.formatVersion]).toEqual([formatVersion, formatVersion]);
    const ea = await readEntry(store, 'entry-a');
    const eb = await readEntry(store, 'entry-b');
    const inB = new Set(eb.config.chunks.map((c) => c.digest));
    const onlyAChunks = new Set(ea.config.chunks.map((c) => c.digest).filter((d) => !inB.has(d)));
    const sharedChunks = new Set(ea.config.chunks.map((c) => c.digest).filter((d) => inB.has(d)));
    expect(onlyAChunks.size).toBeGreaterThan(0);
    expect(sharedChunks.size).toBeGreaterThan(1);
    const aLayers = ea.manifest.layers.map((l) => l.digest);
    const bLayers = eb.manifest.layers.map((l) => l.digest);
    const onlyA = aLayers.filter((d) => !bLayers.includes(d));
    if (layout === 'blobs') {
      expect(onlyA.length).toBeGreaterThan(0);
      expect(aLayers.length - onlyA.length).toBeGreaterThan(10);
    } else {
      expect(aLayers).toHaveLength(1);
      const inAPack = eb.config.chunks.filter((c) => bLayers[c.layer] === aLayers[0]);
      if (layout === 'pack') {
        // B = A's pack + a pack of its new chunks; every shared chunk read from A's pack.
        expect(bLayers).toHaveLength(2);
        expect(onlyA).toEqual([]);
        expect(new Set(inAPack.map((c) => c.digest))).toEqual(sharedChunks);
      } else {
        expect(onlyA).toEqual(aLayers);
        expect(inAPack).toEqual([]);
      }
    }
    // What only A referenced (its config, its own chunks or pack) goes; all B references stays.
    const gone = [...onlyA, ea.manifest.config.digest];
    const kept = [...bLayers, eb.manifest.config.digest];

    await store.deleteManifest(sa.digest);
    await reg.garbageCollect();
    // GC really ran …
    for (const d of gone) expect(await store.blobExists({ digest: d }), d).toBe(false);
    // … it kept B's blobs (in version 2 A's pack among them: B's manifest names it) …
    for (const d of kept) expect(await store.blobExists({ digest: d }), d).toBe(true);
    // … and B restores byte-identical.
    const dst = await taskDir();
    expect((await restoreEntry(store, { dir: dst, generates: ALL, tag: 'entry-b' }))?.digest).toBe(sb.digest);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(b, 'dist'));
    expect(
      await restoreEntry(store, { dir: await taskDir(), generates: ALL, tag: 'entry-a' }),
    ).toBeUndefined();

    await reg.garbageCollect({ deleteUntagged: true });
    for (const d of kept) expect(await store.blobExists({ digest: d }), d).toBe(true);
    const dst2 = await taskDir();
    expect((await restoreEntry(store, { dir: dst2, generates: ALL, tag: 'entry-b' }))?.digest).toBe(
      sb.digest,
    );
    expect(await treeHash(dst2, 'dist')).toBe(await treeHash(b, 'dist'));

    // Regression: this process still "knows" A's collected chunks; saving A again must notice
    // MANIFEST_BLOB_UNKNOWN, re-push them and succeed. NOTE: in version 2 only a save without a
    // base rebuilds A's collected pack byte for byte (on B, A's own chunks make a new pack).
    const again = await saveEntry(store, {
      ...opts,
      ...(layout === 'repacked' ? { base: false as const } : {}),
      dir: a,
      tag: 'entry-a',
      key: 'entry-a',
    });
    expect(again.chunksPushed).toBeGreaterThanOrEqual(onlyAChunks.size);
    const ea2 = await readEntry(store, 'entry-a');
    expect(ea2.manifest.layers.map((l) => l.digest)).toEqual(expect.arrayContaining(onlyA));
    const dst3 = await taskDir();
    await restoreEntry(store, { dir: dst3, generates: ALL, tag: 'entry-a' });
    expect(await treeHash(dst3, 'dist')).toBe(await treeHash(a, 'dist'));
  });

  it.each([
    1, 2,
  ] as const)('an index entry whose child manifests were collected (--delete-untagged) is a miss, outputs untouched (version %i)', async (formatVersion) => {
    const store = backend(`gc/index-v${formatVersion}`);
    const src = await taskDir();
    await writeTree(src, { 'dist/data.bin': seededBytes(200 * KiB, 1021), 'dist/version.txt': 'one' });
    const opts = { dir: src, generates: ALL, task: 't', avgChunkSize: 4096, formatVersion };
    let saved: SaveEntryResult;
    let layerCap: number;
    if (formatVersion === 1) {
      // One layer per chunk: 4 KiB chunks over a cap of 8 layers.
      layerCap = 8;
      saved = await saveEntry(store, { ...opts, tag: 'idx', key: 'idx', layerCap });
      expect(saved.chunksTotal).toBeGreaterThan(2 * layerCap);
    } else {
      // One pack per save at this size: a warm save on a cold one has two layers (the cold
      // pack, reused, and its own pack of the changed chunk) over a cap of one.
      layerCap = 1;
      await saveEntry(store, { ...opts, tag: 'idx-base', key: 'idx-base', layerCap });
      await writeTree(src, { 'dist/version.txt': 'two' });
      saved = await saveEntry(store, { ...opts, tag: 'idx', key: 'idx', base: 'idx-base', layerCap });
    }
    expect(saved.formatVersion).toBe(formatVersion);
    expect(saved.blobsTotal).toBeGreaterThan(layerCap);
    expect(await hasEntry(store, 'idx')).toBe(true);
    const index = JSON.parse(Buffer.from((await store.fetchManifest('idx'))!.bytes).toString());
    expect(index.mediaType).toBe(OCI_INDEX_MEDIA_TYPE);
    expect(index.manifests).toHaveLength(Math.ceil(saved.blobsTotal / layerCap));
    await reg.garbageCollect({ deleteUntagged: true });
    const children = await Promise.all(
      index.manifests.map((m: { digest: string }) => store.fetchManifest(m.digest)),
    );
    expect(children.some((c) => c === undefined)).toBe(true);

    const dst = await taskDir();
    await writeTree(dst, { 'dist/data.bin': 'previous' });
    const before = await treeHash(dst);
    expect(await hasEntry(store, 'idx')).toBe(false);
    expect(await restoreEntry(store, { dir: dst, generates: ALL, tag: 'idx' })).toBeUndefined();
    expect(await treeHash(dst)).toBe(before);
    if (formatVersion === 2) {
      // The collected children referenced the base's pack: the base, tagged, still restores.
      await writeTree(src, { 'dist/version.txt': 'one' });
      const base = await taskDir();
      expect(await restoreEntry(store, { dir: base, generates: ALL, tag: 'idx-base' })).toBeDefined();
      expect(await treeHash(base, 'dist')).toBe(await treeHash(src, 'dist'));
    }
  });
});

describe('interrupted restores (real registry)', () => {
  const sizes = [
    // Version 1: one GET per chunk, 256 of them.
    { formatVersion: 1, mib: 4, avgChunkSize: 16 * KiB },
    // Version 2: one GET per run of at most 8 MiB: the registry goes away during the first of 3+.
    { formatVersion: 2, mib: 24, avgChunkSize: 64 * KiB },
  ] as const;
  it.each(
    sizes,
  )('a registry that goes away mid-restore leaves the previous outputs intact (version $formatVersion)', async ({
    formatVersion,
    mib,
    avgChunkSize,
  }) => {
    const store = createOciBackend({
      url: reg.ociUrl(`interrupt/v${formatVersion}`),
      credentials: { username: reg.username, password: reg.password },
      retries: 0,
    });
    backends.push(store);
    const src = await taskDir();
    await writeTree(src, { 'dist/a.bin': seededBytes(mib * MiB, 1031) });
    const saved = await saveEntry(store, {
      dir: src,
      generates: ALL,
      tag: 'big',
      task: 't',
      key: 'big',
      avgChunkSize,
      formatVersion,
    });
    expect(saved.formatVersion).toBe(formatVersion);
    if (formatVersion === 2)
      expect(expectedRuns(await readEntry(store, 'big')).length).toBeGreaterThanOrEqual(3);
    const dst = await taskDir();
    await writeTree(dst, { 'dist/a.bin': 'previous', 'dist/other.txt': 'kept' });
    const before = await treeHash(dst);
    let stopping: Promise<void> | undefined;
    const err = await restoreEntry(store, {
      dir: dst,
      generates: ALL,
      tag: 'big',
      concurrency: 1,
      onProgress: (p) => {
        if (p.chunksDone === 5) stopping = reg.stop();
      },
    }).catch((e) => e);
    await stopping;
    expect(stopping).toBeDefined();
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('OCI_ERR_NETWORK');
    expect(await treeHash(dst)).toBe(before);
    await reg.start();
    const ok = await restoreEntry(store, { dir: dst, generates: ALL, tag: 'big' });
    expect(ok?.files).toBe(1);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
  });
});
