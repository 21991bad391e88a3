/**
 * Entries against the real CNCF distribution registry (docker-registry 2.8.2) with TLS and token
 * auth, through the testkit fixture: the conformance suite (the default format version with the
 * big cases, version 1 with the small ones), garbage collection safety, and restores interrupted
 * by the registry going away.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createOciBackend, type OciBackend } from '@task-cache/oci';
import { type RegistryFixture, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { hasEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

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

function layersOf(bytes: Uint8Array): string[] {
  return JSON.parse(Buffer.from(bytes).toString()).layers.map((l: { digest: string }) => l.digest);
}

describe('garbage collection safety (real registry)', () => {
  it('an entry sharing chunks with a deleted one still restores after GC, with and without --delete-untagged', async () => {
    const store = backend('gc/shared');
    const a = await taskDir();
    const b = await taskDir();
    const shared = seededBytes(2 * 1024 * 1024, 1011);
    await writeTree(a, { 'dist/shared.bin': shared, 'dist/only-a.bin': seededBytes(256 * 1024, 1012) });
    await writeTree(b, { 'dist/shared.bin': shared, 'dist/only-b.bin': seededBytes(256 * 1024, 1013) });
    const opts = { generates: ALL, task: 't', avgChunkSize: 64 * 1024 };
    const sa = await saveEntry(store, { ...opts, dir: a, tag: 'entry-a', key: 'entry-a' });
    const sb = await saveEntry(store, { ...opts, dir: b, tag: 'entry-b', key: 'entry-b' });
    const aLayers = layersOf((await store.fetchManifest('entry-a'))!.bytes);
    const bLayers = new Set(layersOf((await store.fetchManifest('entry-b'))!.bytes));
    const onlyA = aLayers.filter((d) => !bLayers.has(d));
    expect(onlyA.length).toBeGreaterThan(0);
    expect(aLayers.length - onlyA.length).toBeGreaterThan(10);

    await store.deleteManifest(sa.digest);
    await reg.garbageCollect();
    // GC really ran: the chunks only A used are gone …
    for (const d of onlyA) expect(await store.blobExists({ digest: d })).toBe(false);
    // … and B, which shares the rest, restores byte-identical.
    const dst = await taskDir();
    expect((await restoreEntry(store, { dir: dst, generates: ALL, tag: 'entry-b' }))?.digest).toBe(sb.digest);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(b, 'dist'));
    expect(
      await restoreEntry(store, { dir: await taskDir(), generates: ALL, tag: 'entry-a' }),
    ).toBeUndefined();

    await reg.garbageCollect({ deleteUntagged: true });
    const dst2 = await taskDir();
    expect((await restoreEntry(store, { dir: dst2, generates: ALL, tag: 'entry-b' }))?.digest).toBe(
      sb.digest,
    );
    expect(await treeHash(dst2, 'dist')).toBe(await treeHash(b, 'dist'));

    // Regression: this process still "knows" A's collected chunks; saving A again must notice
    // MANIFEST_BLOB_UNKNOWN, re-push them and succeed.
    const again = await saveEntry(store, { ...opts, dir: a, tag: 'entry-a', key: 'entry-a' });
    expect(again.chunksPushed).toBeGreaterThanOrEqual(onlyA.length);
    const dst3 = await taskDir();
    await restoreEntry(store, { dir: dst3, generates: ALL, tag: 'entry-a' });
    expect(await treeHash(dst3, 'dist')).toBe(await treeHash(a, 'dist'));
  });

  it('an index entry whose child manifests were collected (--delete-untagged) is a miss, outputs untouched', async () => {
    const store = backend('gc/index');
    const src = await taskDir();
    await writeTree(src, { 'dist/data.bin': seededBytes(200 * 1024, 1021) });
    const saved = await saveEntry(store, {
      dir: src,
      generates: ALL,
      tag: 'idx',
      task: 't',
      key: 'idx',
      avgChunkSize: 4096,
      layerCap: 8,
    });
    expect(saved.chunksTotal).toBeGreaterThan(16);
    expect(await hasEntry(store, 'idx')).toBe(true);
    const index = JSON.parse(Buffer.from((await store.fetchManifest('idx'))!.bytes).toString());
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
  });
});

describe('interrupted restores (real registry)', () => {
  it('a registry that goes away mid-restore leaves the previous outputs intact', async () => {
    const store = createOciBackend({
      url: reg.ociUrl('interrupt/r'),
      credentials: { username: reg.username, password: reg.password },
      retries: 0,
    });
    backends.push(store);
    const src = await taskDir();
    await writeTree(src, { 'dist/a.bin': seededBytes(4 * 1024 * 1024, 1031) });
    await saveEntry(store, {
      dir: src,
      generates: ALL,
      tag: 'big',
      task: 't',
      key: 'big',
      avgChunkSize: 16 * 1024,
    });
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
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('OCI_ERR_NETWORK');
    expect(await treeHash(dst)).toBe(before);
    await reg.start();
    const ok = await restoreEntry(store, { dir: dst, generates: ALL, tag: 'big' });
    expect(ok?.files).toBe(1);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
  });
});
