import {
  BlobUnknownError,
  DigestMismatchError,
  ManifestBlobUnknownError,
  SizeMismatchError,
  sha256Digest,
} from '@task-cache/oci';
import { storeContract } from '@task-cache/testkit';
import { describe, expect, it } from 'vitest';
import { countingStore } from './counting.js';
import { defaultCacheDir } from './default-dir.js';
import { createMemoryStore } from './memory.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const desc = (b: Uint8Array) => ({
  mediaType: 'application/octet-stream',
  digest: sha256Digest(b),
  size: b.byteLength,
});

async function read(it: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts).toString();
}

describe('createMemoryStore', () => {
  it('round-trips blobs and verifies reads', async () => {
    const store = createMemoryStore();
    const b = bytes('hello');
    await store.pushBlob(desc(b), b);
    expect(await store.blobExists(desc(b))).toBe(true);
    expect(await read(await store.fetchBlob(desc(b)))).toBe('hello');
    store.corruptBlob(desc(b).digest, bytes('hellO'));
    await expect(read(await store.fetchBlob(desc(b)))).rejects.toBeInstanceOf(DigestMismatchError);
    store.deleteBlob(desc(b).digest);
    await expect(store.fetchBlob(desc(b))).rejects.toBeInstanceOf(BlobUnknownError);
  });

  it('a ranged read is a slice of the stored bytes, checked for its exact length', async () => {
    const store = createMemoryStore();
    const b = bytes('hello, world');
    await store.pushBlob(desc(b), b);
    expect(await read(await store.fetchBlob(desc(b), { range: { offset: 7, length: 5 } }))).toBe('world');
    // Stored bytes shorter than the descriptor (a lost tail): the range past them is refused.
    store.corruptBlob(desc(b).digest, bytes('hello, wor'));
    await expect(
      read(await store.fetchBlob(desc(b), { range: { offset: 7, length: 5 } })),
    ).rejects.toBeInstanceOf(SizeMismatchError);
    await expect(
      read(await store.fetchBlob(desc(b), { range: { offset: 11, length: 1 } })),
    ).rejects.toBeInstanceOf(SizeMismatchError);
  });

  it('refuses a pushed blob that does not match its descriptor', async () => {
    const store = createMemoryStore();
    await expect(store.pushBlob(desc(bytes('a')), bytes('b'))).rejects.toBeInstanceOf(DigestMismatchError);
  });

  it('answers MANIFEST_BLOB_UNKNOWN with the missing digests, tags, lists and deletes', async () => {
    const store = createMemoryStore();
    const cfg = bytes('{}');
    const manifest = bytes(JSON.stringify({ schemaVersion: 2, config: desc(cfg), layers: [] }));
    const err = await store
      .pushManifest(manifest, 'application/vnd.oci.image.manifest.v1+json', { tag: 't' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ManifestBlobUnknownError);
    expect(err.missingDigests).toEqual([desc(cfg).digest]);
    await store.pushBlob(desc(cfg), cfg);
    const d = await store.pushManifest(manifest, 'application/vnd.oci.image.manifest.v1+json', { tag: 't' });
    expect((await store.fetchManifest('t'))?.descriptor.digest).toBe(d.digest);
    await store.tag(d, 'u');
    const tags: string[] = [];
    for await (const t of store.listTags()) tags.push(t);
    expect(tags).toEqual(['t', 'u']);
    await store.deleteManifest(d.digest);
    expect(await store.fetchManifest('t')).toBeUndefined();
  });
});

describe('countingStore', () => {
  it('counts calls per method and keeps extra members', async () => {
    const store = countingStore(createMemoryStore());
    const b = bytes('x');
    await store.blobExists(desc(b));
    await store.pushBlob(desc(b), b);
    await store.pushBlob(desc(b), b);
    expect(store.counts.pushBlob).toBe(2);
    expect(store.counts.blobExists).toBe(1);
    expect(store.counts.fetchBlob).toBe(0);
    expect(store.blobDigests()).toEqual([desc(b).digest]);
    store.resetCounts();
    expect(store.counts.pushBlob).toBe(0);
  });
});

describe('defaultCacheDir', () => {
  it('prefers TASK_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(defaultCacheDir({ TASK_CACHE_DIR: '/a', XDG_CACHE_HOME: '/b', HOME: '/h' })).toBe('/a');
    expect(defaultCacheDir({ TASK_CACHE_DIR: '', XDG_CACHE_HOME: '/b', HOME: '/h' })).toBe('/b/task-cache');
    expect(defaultCacheDir({ HOME: '/h' })).toBe('/h/.cache/task-cache');
  });
});

// The store contract of @task-cache/testkit, as every OciStore runs it.
storeContract(
  'memory store',
  async () => {
    const store = createMemoryStore();
    return {
      store,
      async tamper(digest: string, bytes: Uint8Array) {
        store.corruptBlob(digest, bytes);
      },
    };
  },
  { listTags: true, deleteManifest: true, maxEntrySize: false },
);
