import { readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NetworkError, type OciStore } from '@task-cache/oci';
import { describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { expectedRuns, readEntry } from '../../test/v2.js';
import { EntryOutputsError, EntryRefusedError } from '../errors.js';
import { hasNodeZstd } from '../internal/zstd.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import {
  CHUNK_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  PACK_MEDIA_TYPE,
} from './format.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

// The conformance suite saves and restores with the default stateDir: keep it out of HOME.
isolateCacheDir();

entryConformance(
  'memory',
  async () => {
    const store = createMemoryStore();
    return {
      store,
      tamperBlob: async (digest, bytes) => store.corruptBlob(digest, bytes),
      removeBlob: async (digest) => {
        store.deleteBlob(digest);
      },
    };
  },
  // NOTE: version 1 here; format-v2.test.ts runs the suite with version 2 (the default) on this store.
  { tamper: true, formatVersion: 1 },
);

const VERSIONS = [1, 2] as const;
const MiB = 1024 * 1024;
/** The media type of an entry's layers: one chunk each (v1), or packs of frames (v2). */
const layerType = (v: 1 | 2) => (v === 2 ? PACK_MEDIA_TYPE : CHUNK_MEDIA_TYPE);

/**
 * The requests a restore of the entry tagged `tag` makes for its layers (docs/format.md §11.3):
 * one per chunk in version 1, one per run of adjacent frames in version 2.
 */
async function runsOfEntry(store: OciStore, tag: string) {
  const entry = await readEntry(store, tag);
  if (entry.config.formatVersion === 2) return expectedRuns(entry);
  return entry.config.chunks.map((_, i) => ({
    layer: i,
    offset: 0,
    length: entry.manifest.layers[i]!.size,
    whole: true,
  }));
}

/**
 * `store` declaring a 192 KiB blob cap, as the Redis store does: a version 2 save then cuts packs
 * of 64–127 KiB (docs/format.md §11.1, the store-cap rule), so a few hundred KiB make several.
 */
function smallPacks<S extends OciStore>(store: S): S {
  return Object.assign(store, { limits: { maxEntrySize: 192 * 1024 } });
}

describe('one hash per byte on restore (issue 15)', () => {
  it.each(
    VERSIONS,
  )('chunks are fetched with contentVerified (their uncompressed digest is checked), the config without (format v%i)', async (formatVersion) => {
    const store = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    try {
      await writeTree(src, { 'dist/a.bin': seededBytes(256 * 1024, 3) });
      await saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 16 * 1024,
        formatVersion,
      });
      const seen: Array<{ mediaType: string; contentVerified: boolean }> = [];
      const tracking: OciStore = {
        ...store,
        fetchBlob: async (d, o) => {
          seen.push({ mediaType: d.mediaType, contentVerified: o?.contentVerified === true });
          return store.fetchBlob(d, o);
        },
      };
      const restored = await restoreEntry(tracking, { dir: dst, generates: ['dist/**'], tag: 't' });
      expect(restored?.chunksFetched).toBeGreaterThan(1);
      expect(await treeHash(dst)).toBe(await treeHash(src));
      // One request per chunk (v1) or per run of frames (v2: this entry is one pack, one run).
      const layers = seen.filter((s) => s.mediaType === layerType(formatVersion));
      const runs = await runsOfEntry(store, 't');
      expect(layers).toHaveLength(runs.length);
      if (formatVersion === 1) expect(layers).toHaveLength(restored?.chunksFetched as number);
      expect(layers.every((s) => s.contentVerified)).toBe(true);
      expect(seen.filter((s) => s.mediaType !== layerType(formatVersion))).toEqual([
        {
          mediaType: formatVersion === 2 ? ENTRY_CONFIG_MEDIA_TYPE_V2 : ENTRY_CONFIG_MEDIA_TYPE,
          contentVerified: false,
        },
      ]);
    } finally {
      await removeDir(src);
      await removeDir(dst);
    }
  });
});

describe('a store failing mid-restore (in-memory fake)', () => {
  // Version 1: 2 MiB in 16 KiB chunks, the 11th chunk fails. Version 2: 20 MiB in one or two
  // packs, read in runs of at most 8 MiB (ranged GETs); the third run fails, inside the file.
  it.each([
    { formatVersion: 1 as const, size: 2 * MiB, failAfter: 10 },
    { formatVersion: 2 as const, size: 20 * MiB, failAfter: 2 },
  ])('rejects with the store error and leaves the previous outputs intact (regression: hung inside a large file; format v$formatVersion)', async ({
    formatVersion,
    size,
    failAfter,
  }) => {
    const store = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    try {
      await writeTree(src, { 'dist/big.bin': seededBytes(size, 1) });
      await saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 16 * 1024,
        formatVersion,
      });
      expect((await runsOfEntry(store, 't')).length).toBeGreaterThan(failAfter + 1);
      await writeTree(dst, { 'dist/big.bin': 'previous' });
      const before = await treeHash(dst);
      let fetches = 0;
      let doneAtFailure = -1;
      let done = 0;
      const failing: OciStore = {
        ...store,
        fetchBlob: async (d, o) => {
          if (d.mediaType === layerType(formatVersion) && ++fetches > failAfter) {
            doneAtFailure = done;
            throw new NetworkError('connection reset');
          }
          return store.fetchBlob(d, o);
        },
      };
      const err = await restoreEntry(failing, {
        dir: dst,
        generates: ['dist/**'],
        tag: 't',
        concurrency: 2,
        onProgress: (p) => {
          done = p.chunksDone;
        },
      }).catch((e) => e);
      expect(err).toBeInstanceOf(NetworkError);
      // The failure came mid-restore: chunks of the big file were verified before it.
      expect(doneAtFailure).toBeGreaterThan(0);
      expect(await treeHash(dst)).toBe(before);
    } finally {
      await removeDir(src);
      await removeDir(dst);
    }
  });
});

describe('entries written by one zstd codec restore with the other', () => {
  const codecs = hasNodeZstd() ? (['node', 'zstd-codec'] as const) : (['zstd-codec'] as const);
  for (const writer of codecs) {
    for (const reader of codecs) {
      it(`saved with ${writer}, restored with ${reader}`, async () => {
        const store = createMemoryStore();
        const src = await tempDir();
        const dst = await tempDir();
        try {
          await writeTree(src, {
            'dist/a.txt': 'text '.repeat(50_000),
            'dist/b.bin': seededBytes(300_000, 3),
          });
          await saveEntry(store, {
            dir: src,
            generates: ['dist/**'],
            tag: 't',
            task: 't',
            key: 't',
            codec: writer,
            avgChunkSize: 64 * 1024,
          });
          await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag: 't', codec: reader });
          expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
        } finally {
          await removeDir(src);
          await removeDir(dst);
        }
      });
    }
  }
});

describe('save and restore edge cases (memory store)', () => {
  // Version 2 on a store with small packs (several of them), so that one pack is lost, not all.
  it.each(
    VERSIONS,
  )('re-pushes chunks the store lost after this process saw them (MANIFEST_BLOB_UNKNOWN → retry; format v%i)', async (formatVersion) => {
    const memory = createMemoryStore();
    const pushed: string[] = [];
    const push = memory.pushBlob;
    memory.pushBlob = (d, body, o) => {
      if (d.mediaType === layerType(formatVersion)) pushed.push(d.digest);
      return push(d, body, o);
    };
    const store = countingStore(formatVersion === 2 ? smallPacks(memory) : memory);
    const src = await tempDir();
    try {
      await writeTree(src, { 'dist/a.bin': seededBytes(formatVersion === 2 ? 500_000 : 100_000, 5) });
      const opts = { dir: src, generates: ['dist/**'], task: 't', avgChunkSize: 16 * 1024, formatVersion };
      const one = await saveEntry(store, { ...opts, tag: 'one', key: 'one' });
      const stored = await readEntry(store, 'one');
      const lost = stored.manifest.layers[1]!.digest;
      // The chunks whose compressed bytes were in the lost blob: chunk 1 (v1), pack 1's frames (v2).
      const inLost = formatVersion === 2 ? stored.config.chunks.filter((c) => c.layer === 1).length : 1;
      if (formatVersion === 2) {
        expect(one.blobsTotal).toBeGreaterThan(2);
        expect(inLost).toBeGreaterThan(1);
      }
      store.deleteBlob(lost);
      store.resetCounts();
      pushed.length = 0;
      const again = await saveEntry(store, { ...opts, tag: 'two', key: 'two' });
      expect(store.counts.pushManifest).toBe(2); // refused once, then accepted
      expect(again.chunksPushed).toBe(inLost);
      expect(pushed).toEqual([lost]); // only the lost blob went up again
      const dst = await tempDir();
      await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag: 'two' });
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      await removeDir(dst);
    } finally {
      await removeDir(src);
    }
  });

  it('refuses to save a symlink output pointing outside the task directory', async () => {
    const src = await tempDir();
    try {
      await writeTree(src, { 'dist/a.js': 'a' });
      await symlink('/etc/passwd', join(src, 'dist/passwd'));
      const err = await saveEntry(createMemoryStore(), {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
      }).catch((e) => e);
      expect(err).toBeInstanceOf(EntryOutputsError);
      expect(err.path).toBe('dist/passwd');
    } finally {
      await removeDir(src);
    }
  });

  it('refuses to restore through a symlink already in the task directory; nothing written at its target', async () => {
    const store = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    const elsewhere = await tempDir();
    try {
      await writeTree(src, { 'dist/a.js': 'a' });
      await saveEntry(store, { dir: src, generates: ['dist/*.js'], tag: 't', task: 't', key: 't' });
      await symlink(elsewhere, join(dst, 'dist'));
      const err = await restoreEntry(store, { dir: dst, generates: ['dist/*.js'], tag: 't' }).catch((e) => e);
      expect(err).toBeInstanceOf(EntryRefusedError);
      expect(await readdir(elsewhere)).toEqual([]);
      expect((await readdir(dst)).sort()).toEqual(['dist']);
    } finally {
      await removeDir(src);
      await removeDir(dst);
      await removeDir(elsewhere);
    }
  });

  it('a restore replaces stale outputs, keeps non-outputs, and leaves no scratch directories', async () => {
    const store = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    try {
      await writeTree(src, { 'dist/new.js': 'new', 'dist/sub/x.js': 'x' });
      await saveEntry(store, { dir: src, generates: ['dist/**'], tag: 't', task: 't', key: 't' });
      await writeTree(dst, { 'dist/old.js': 'old', 'dist/gone/deep.js': 'gone', 'README.md': 'keep' });
      await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag: 't' });
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      expect((await readdir(dst)).sort()).toEqual(['README.md', 'dist']);
    } finally {
      await removeDir(src);
      await removeDir(dst);
    }
  });

  // Version 2 on a store with small packs, so that several packs are pushed.
  it.each(
    VERSIONS,
  )('passes mountFrom to every chunk push (cross-repository mount; format v%i)', async (formatVersion) => {
    const inner = formatVersion === 2 ? smallPacks(createMemoryStore()) : createMemoryStore();
    const seen: Array<{ mediaType: string; mountFrom: string[] | undefined }> = [];
    const store: OciStore = {
      ...inner,
      pushBlob: (d, body, o) => {
        seen.push({ mediaType: d.mediaType, mountFrom: o?.mountFrom });
        return inner.pushBlob(d, body, o);
      },
    };
    const src = await tempDir();
    try {
      await writeTree(src, { 'dist/a.bin': seededBytes(formatVersion === 2 ? 500_000 : 50_000, 9) });
      const saved = await saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 8192,
        mountFrom: ['team/shared'],
        formatVersion,
      });
      // Every layer (a chunk, or a pack) and the config.
      expect(saved.blobsTotal).toBeGreaterThan(formatVersion === 2 ? 2 : 3);
      expect(seen.filter((s) => s.mediaType === layerType(formatVersion))).toHaveLength(saved.blobsTotal);
      expect(seen).toHaveLength(saved.blobsTotal + 1);
      expect(seen.every((s) => s.mountFrom?.[0] === 'team/shared')).toBe(true);
    } finally {
      await removeDir(src);
    }
  });

  // Version 1: 1 MiB in 16 KiB chunks, the last chunk held. Version 2: 12 MiB in one pack, read
  // in two runs (ranged GETs of at most 8 MiB), the run holding the last frame held.
  it.each([
    { formatVersion: 1 as const, size: MiB },
    { formatVersion: 2 as const, size: 12 * MiB },
  ])('extracts the first files into staging while later chunks are still downloading (format v$formatVersion)', async ({
    formatVersion,
    size,
  }) => {
    const inner = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    try {
      await writeTree(src, { 'dist/a-first.txt': 'first', 'dist/b-big.bin': seededBytes(size, 10) });
      await saveEntry(inner, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 16 * 1024,
        formatVersion,
      });
      expect((await runsOfEntry(inner, 't')).length).toBeGreaterThan(1);
      // Where the last chunk's frame is: the whole last layer (v1), or a range of a pack (v2).
      const { manifest, config } = await readEntry(inner, 't');
      const lastChunk = config.chunks[config.chunks.length - 1]!;
      const last =
        formatVersion === 2
          ? { digest: manifest.layers[lastChunk.layer]!.digest, offset: lastChunk.offset }
          : { digest: manifest.layers[manifest.layers.length - 1]!.digest, offset: 0 };
      const stagedFirst = async () => {
        for (const name of await readdir(dst)) {
          if (!name.startsWith('.task-cache-restore-')) continue;
          if ((await readdir(join(dst, name, 'dist')).catch((): string[] => [])).includes('a-first.txt'))
            return true;
        }
        return false;
      };
      let held = false;
      const store: OciStore = {
        ...inner,
        fetchBlob: async (d, o) => {
          const from = o?.range?.offset ?? 0;
          const to = o?.range === undefined ? d.size : from + o.range.length;
          if (d.digest === last.digest && from <= last.offset && last.offset < to) {
            // The last chunk is only served once the first file sits in staging: a restore that
            // waited for every chunk before extracting would never finish.
            while (!(await stagedFirst())) await new Promise((r) => setTimeout(r, 5));
            held = true;
          }
          return inner.fetchBlob(d, o);
        },
      };
      await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag: 't', concurrency: 4 });
      expect(held).toBe(true);
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    } finally {
      await removeDir(src);
      await removeDir(dst);
    }
  });
});
