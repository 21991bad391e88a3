/**
 * zstd-codec (the Node < 22.15 codec) holds at most 4 MiB per chunk in its fixed WebAssembly
 * heap: larger chunk settings are refused up front with typed errors, and a codec worker whose
 * zstd-codec instance aborted is replaced.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir, writeTree } from '../../test/helpers.js';
import { file, pushHostile } from '../../test/hostile.js';
import { EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { ZSTD_CODEC_MAX_CHUNK } from '../internal/zstd.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import { createCodecPool } from '../workers/codec-pool.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

let root: string;
beforeAll(async () => {
  root = await tempDir('tc-codec-limits-');
});
afterAll(async () => {
  await removeDir(root);
});

describe('zstd-codec chunk limit', () => {
  it('a save with chunks that could exceed 4 MiB is refused before anything is pushed', async () => {
    const dir = join(root, 'save');
    await writeTree(dir, { 'dist/a.txt': 'a' });
    const store = countingStore(createMemoryStore());
    const opts = {
      dir,
      generates: ['dist/**'],
      tag: 't',
      task: 'build',
      key: 't',
      codec: 'zstd-codec',
      stateDir: false,
    } as const;
    const err = await saveEntry(store, { ...opts, avgChunkSize: 2 * 1024 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(String((err as Error).message)).toMatch(/avgChunkSize.*zstd-codec/);
    expect(store.counts.pushBlob).toBe(0);
    // the default (1 MiB average, 4 MiB largest chunk) is fine
    await saveEntry(store, opts);
  });

  it('restoring an entry with a chunk over 4 MiB is EntryTooLargeError before any download; outputs untouched', async () => {
    const inner = createMemoryStore();
    await pushHostile(inner, 'big', [file('dist/a.txt', 'new')], { declaredSize: ZSTD_CODEC_MAX_CHUNK + 1 });
    const store = countingStore(inner);
    const dir = join(root, 'restore');
    await mkdir(join(dir, 'dist'), { recursive: true });
    await writeTree(dir, { 'dist/a.txt': 'old' });
    const err = await restoreEntry(store, {
      dir,
      generates: ['dist/**'],
      tag: 'big',
      codec: 'zstd-codec',
      stateDir: false,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EntryTooLargeError);
    expect(err).toMatchObject({ limit: ZSTD_CODEC_MAX_CHUNK, size: ZSTD_CODEC_MAX_CHUNK + 1 });
    expect(store.counts.fetchBlob).toBe(1); // the config only, no chunk
    expect(await readFile(join(dir, 'dist/a.txt'), 'utf8')).toBe('old');
  });

  it('a codec worker whose zstd-codec instance ran out of memory is replaced', async () => {
    const pool = createCodecPool(1);
    try {
      // zstd-codec aborts (its instance, or the whole thread) on a chunk its heap cannot hold
      await expect(pool.compress('zstd-codec', randomBytes(8 * 1024 * 1024), 3)).rejects.toThrow(
        /OOM|exited/,
      );
      const data = Buffer.from('still works '.repeat(1000));
      const { output } = await pool.compress('zstd-codec', data, 3);
      expect(output.byteLength).toBeGreaterThan(0);
      expect(output.byteLength).toBeLessThan(data.byteLength);
    } finally {
      await pool.close();
    }
  });
});
