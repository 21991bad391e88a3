import { NetworkError, type OciStore } from '@task-cache/oci';
import { describe, expect, it } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { hasNodeZstd } from '../internal/zstd.js';
import { createMemoryStore } from '../store/memory.js';
import { CHUNK_MEDIA_TYPE } from './format.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

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
