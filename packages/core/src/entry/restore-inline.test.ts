import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { dir as dirEntry, file, link, pushHostile } from '../../test/hostile.js';
import { EntryCorruptError, EntryRefusedError } from '../errors.js';
import { createMemoryStore } from '../store/memory.js';
import { codecPool } from '../workers/codec-pool.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

// Issue 14 step 2: entries below `inlineBelow` restore on the calling thread. The same entry
// restored by both paths gives the same tree, and both refuse the same damage.

let work: string;
beforeAll(async () => {
  work = await tempDir('tc-inline-');
});
afterAll(async () => {
  await removeDir(work);
});

const files: Record<string, string | Uint8Array> = {
  'dist/a.txt': 'alpha\n',
  'dist/sub/b.bin': seededBytes(300_000, 1),
  'dist/sub/c.txt': '',
};
for (let i = 0; i < 150; i++) files[`dist/many/f${i}.txt`] = `file ${i}\n`;

describe('restore on the calling thread (inlineBelow)', () => {
  it('both paths restore byte-identical trees (contents, modes, mtimes); the inline one starts no codec work', async () => {
    const store = createMemoryStore();
    const src = join(work, 'src');
    await writeTree(src, files);
    const saved = await saveEntry(store, {
      dir: src,
      generates: ['dist/**'],
      tag: 't',
      task: 'build',
      key: 't',
      keepMtimes: true,
      stateDir: false,
      avgChunkSize: 64 * 1024,
    });
    expect(saved.chunksTotal).toBeGreaterThan(1);

    const before = codecPool().stats.decompress;
    const inline = join(work, 'inline');
    const workers = join(work, 'workers');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(inline);
    await mkdir(workers);
    const a = await restoreEntry(store, { dir: inline, generates: ['dist/**'], tag: 't', stateDir: false });
    // The control: the inline path decompressed nothing in the pool; the worker path did.
    expect(codecPool().stats.decompress).toBe(before);
    const b = await restoreEntry(store, {
      dir: workers,
      generates: ['dist/**'],
      tag: 't',
      stateDir: false,
      inlineBelow: 0,
    });
    expect(codecPool().stats.decompress).toBe(before + saved.chunksTotal);

    expect(a?.files).toBe(b?.files);
    expect(a?.chunksFetched).toBe(saved.chunksTotal);
    expect(await treeHash(inline)).toBe(await treeHash(src));
    expect(await treeHash(workers)).toBe(await treeHash(src));
    for (const p of ['dist/a.txt', 'dist/sub/b.bin', 'dist/many/f7.txt']) {
      expect((await stat(join(inline, p))).mtimeMs).toBe((await stat(join(workers, p))).mtimeMs);
    }
  });

  const cases = [
    {
      what: 'a chunk whose uncompressed digest differs from the config',
      push: (store: ReturnType<typeof createMemoryStore>) =>
        pushHostile(store, 't', [file('dist/a.txt', 'hello')], {
          declaredDigest: `sha256:${'0'.repeat(64)}`,
        }),
      error: EntryCorruptError,
    },
    {
      what: 'a symlink escaping the task directory',
      push: (store: ReturnType<typeof createMemoryStore>) =>
        pushHostile(store, 't', [dirEntry('dist'), link('dist/evil', '../../etc/passwd')]),
      error: EntryRefusedError,
    },
  ];
  for (const { what, push, error } of cases) {
    it(`${what}: refused by both paths, nothing written`, async () => {
      const store = createMemoryStore();
      await push(store);
      for (const inlineBelow of [undefined, 0]) {
        const dst = await tempDir('tc-inline-dst-');
        try {
          await expect(
            restoreEntry(store, {
              dir: dst,
              generates: ['dist/**'],
              tag: 't',
              stateDir: false,
              ...(inlineBelow === undefined ? {} : { inlineBelow }),
            }),
          ).rejects.toBeInstanceOf(error);
          expect(await readdir(dst)).toEqual([]);
        } finally {
          await removeDir(dst);
        }
      }
    });
  }
});
