import { readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NetworkError, type OciStore } from '@task-cache/oci';
import { describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { EntryOutputsError, EntryRefusedError } from '../errors.js';
import { hasNodeZstd } from '../internal/zstd.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import { CHUNK_MEDIA_TYPE, ENTRY_CONFIG_MEDIA_TYPE } from './format.js';
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
  { tamper: true },
);

describe('one hash per byte on restore (issue 15)', () => {
  it('chunks are fetched with contentVerified (their uncompressed digest is checked), the config without', async () => {
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
      const chunks = seen.filter((s) => s.mediaType === CHUNK_MEDIA_TYPE);
      expect(chunks).toHaveLength(restored?.chunksFetched as number);
      expect(chunks.every((s) => s.contentVerified)).toBe(true);
      expect(seen.filter((s) => s.mediaType !== CHUNK_MEDIA_TYPE)).toEqual([
        { mediaType: ENTRY_CONFIG_MEDIA_TYPE, contentVerified: false },
      ]);
    } finally {
      await removeDir(src);
      await removeDir(dst);
    }
  });
});

describe('a store failing mid-restore (in-memory fake)', () => {
  it('rejects with the store error and leaves the previous outputs intact (regression: hung inside a large file)', async () => {
    const store = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    try {
      await writeTree(src, { 'dist/big.bin': seededBytes(2 * 1024 * 1024, 1) });
      await saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 16 * 1024,
      });
      await writeTree(dst, { 'dist/big.bin': 'previous' });
      const before = await treeHash(dst);
      let fetches = 0;
      const failing: OciStore = {
        ...store,
        fetchBlob: async (d, o) => {
          if (d.mediaType === CHUNK_MEDIA_TYPE && ++fetches > 10) throw new NetworkError('connection reset');
          return store.fetchBlob(d, o);
        },
      };
      const err = await restoreEntry(failing, {
        dir: dst,
        generates: ['dist/**'],
        tag: 't',
        concurrency: 2,
      }).catch((e) => e);
      expect(err).toBeInstanceOf(NetworkError);
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
  it('re-pushes chunks the store lost after this process saw them (MANIFEST_BLOB_UNKNOWN → retry)', async () => {
    const store = countingStore(createMemoryStore());
    const src = await tempDir();
    try {
      await writeTree(src, { 'dist/a.bin': seededBytes(100_000, 5) });
      const opts = { dir: src, generates: ['dist/**'], task: 't', avgChunkSize: 16 * 1024 };
      await saveEntry(store, { ...opts, tag: 'one', key: 'one' });
      const layers = JSON.parse(Buffer.from((await store.fetchManifest('one'))!.bytes).toString()).layers;
      store.deleteBlob(layers[1].digest);
      store.resetCounts();
      const again = await saveEntry(store, { ...opts, tag: 'two', key: 'two' });
      expect(store.counts.pushManifest).toBe(2); // refused once, then accepted
      expect(again.chunksPushed).toBe(1);
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

  it('passes mountFrom to every chunk push (cross-repository mount)', async () => {
    const inner = createMemoryStore();
    const seen: Array<string[] | undefined> = [];
    const store: OciStore = {
      ...inner,
      pushBlob: (d, body, o) => {
        seen.push(o?.mountFrom);
        return inner.pushBlob(d, body, o);
      },
    };
    const src = await tempDir();
    try {
      await writeTree(src, { 'dist/a.bin': seededBytes(50_000, 9) });
      await saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 8192,
        mountFrom: ['team/shared'],
      });
      expect(seen.length).toBeGreaterThan(3);
      expect(seen.every((m) => m?.[0] === 'team/shared')).toBe(true);
    } finally {
      await removeDir(src);
    }
  });

  it('extracts the first files into staging while later chunks are still downloading', async () => {
    const inner = createMemoryStore();
    const src = await tempDir();
    const dst = await tempDir();
    try {
      await writeTree(src, { 'dist/a-first.txt': 'first', 'dist/b-big.bin': seededBytes(1024 * 1024, 10) });
      await saveEntry(inner, {
        dir: src,
        generates: ['dist/**'],
        tag: 't',
        task: 't',
        key: 't',
        avgChunkSize: 16 * 1024,
      });
      const layers = JSON.parse(Buffer.from((await inner.fetchManifest('t'))!.bytes).toString()).layers;
      const last = layers[layers.length - 1].digest;
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
          if (d.digest === last) {
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
