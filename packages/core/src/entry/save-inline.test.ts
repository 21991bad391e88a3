import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { InvalidOptionError } from '../errors.js';
import { createMemoryStore } from '../store/memory.js';
import { codecPool } from '../workers/codec-pool.js';
import { lookupEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';
import type { SaveEntryOptions } from './types.js';

// Issue 14 step 2: outputs below `inlineBelow` bytes and `inlineFilesBelow` entries are saved on
// the calling thread by the pack worker's own code. Both paths must store the same entry.

let work: string;
beforeAll(async () => {
  work = await tempDir('tc-save-inline-');
});
afterAll(async () => {
  await removeDir(work);
});

/**
 * Saves `dir` into a fresh memory store; the entry as resolved, and whether codec workers ran.
 * `blobCap` makes the store declare that blob cap, as the Redis store does (a version 2 save then
 * cuts smaller packs, docs/format.md §11.1).
 */
async function saveWith(dir: string, extra: Partial<SaveEntryOptions>, blobCap?: number) {
  const store = createMemoryStore();
  if (blobCap !== undefined) Object.assign(store, { limits: { maxEntrySize: blobCap } });
  const before = codecPool().stats.compress;
  const saved = await saveEntry(store, {
    dir,
    generates: ['dist/**'],
    tag: 'same',
    task: 'build',
    key: 'k1',
    stateDir: false,
    ...extra,
  });
  const compressedByWorkers = codecPool().stats.compress - before;
  const entry = await lookupEntry(store, { tag: 'same' });
  if (entry === undefined) throw new Error('entry not found');
  return { store, saved, entry, compressedByWorkers };
}

const cases: Array<{
  name: string;
  files: Record<string, string | Uint8Array>;
  extra: Partial<SaveEntryOptions>;
}> = [
  {
    name: 'three small files (one chunk)',
    files: { 'dist/a.txt': 'alpha\n', 'dist/b/c.txt': 'gamma', 'dist/empty.txt': '' },
    extra: {},
  },
  {
    name: 'mixed files in many chunks (avgChunkSize 4 KiB, mtimes kept)',
    files: {
      'dist/a.bin': seededBytes(200_000, 7),
      'dist/sub/b.bin': seededBytes(90_000, 8),
      ...Object.fromEntries(
        Array.from({ length: 120 }, (_, i) => [`dist/many/f${i}.txt`, `file ${i}\n`.repeat(i)]),
      ),
      // The same content twice: a repeated chunk within the save.
      'dist/copy/a.bin': seededBytes(200_000, 7),
    },
    extra: { avgChunkSize: 4096, keepMtimes: true },
  },
];

describe('save on the calling thread (inlineBelow, inlineFilesBelow)', () => {
  // NOTE: the config records the save's time: both saves happen at the same fake instant.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-01-02T03:04:05Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  // Each case in format v1 and v2; the many-chunk case in v2 also on a store declaring a 192 KiB
  // blob cap: several packs of 64–127 KiB, cut the same way on both paths.
  const variants = (c: (typeof cases)[number]) => [
    { formatVersion: 1 as const, cap: undefined, label: 'format v1' },
    { formatVersion: 2 as const, cap: undefined, label: 'format v2' },
    ...(c.extra.avgChunkSize === undefined
      ? []
      : [{ formatVersion: 2 as const, cap: 192 * 1024, label: 'format v2, small packs' }]),
  ];
  for (const c of cases)
    for (const { formatVersion, cap, label } of variants(c)) {
      it(`both paths store byte-identical entries: ${c.name} (${label})`, async () => {
        const src = join(work, `${c.name}-${label}`.replace(/\W+/g, '-'));
        await writeTree(src, c.files);
        const inline = await saveWith(src, { ...c.extra, formatVersion }, cap);
        const workers = await saveWith(src, { ...c.extra, formatVersion, inlineBelow: 0 }, cap);
        expect(inline.saved.formatVersion).toBe(formatVersion);
        // The inline save compressed nothing in the codec workers; the worker save did.
        expect(inline.compressedByWorkers).toBe(0);
        expect(workers.compressedByWorkers).toBeGreaterThan(0);
        // Same chunks (uncompressed), same frames, same config, same manifest.
        expect(inline.entry.config.chunks).toEqual(workers.entry.config.chunks);
        expect(inline.entry.layers).toEqual(workers.entry.layers);
        expect(inline.entry.config).toEqual(workers.entry.config);
        expect(inline.entry.configDescriptor.digest).toBe(workers.entry.configDescriptor.digest);
        expect(inline.saved.digest).toBe(workers.saved.digest);
        expect(inline.saved).toMatchObject({
          chunksTotal: workers.saved.chunksTotal,
          chunksPushed: workers.saved.chunksPushed,
          blobsTotal: workers.saved.blobsTotal,
          bytesTotal: workers.saved.bytesTotal,
          bytesPushed: workers.saved.bytesPushed,
          files: workers.saved.files,
        });
        if (c.extra.avgChunkSize !== undefined) {
          // Many chunks: a blob each (v1), one pack (v2), or several packs of many frames (v2, cap).
          expect(inline.entry.config.chunks.length).toBeGreaterThan(10);
          if (formatVersion === 1) expect(inline.entry.layers.length).toBe(inline.entry.config.chunks.length);
          else if (cap === undefined) expect(inline.entry.layers.length).toBe(1);
          else {
            expect(inline.entry.layers.length).toBeGreaterThan(3);
            expect(inline.entry.layers.length).toBeLessThan(inline.entry.config.chunks.length / 4);
          }
        }
        // And the entry restores the tree it was saved from.
        const dst = `${src}-restored`;
        await mkdir(dst, { recursive: true });
        await restoreEntry(inline.store, { dir: dst, generates: ['dist/**'], tag: 'same', stateDir: false });
        expect(await treeHash(dst)).toBe(await treeHash(src));
      });
    }

  it('outputs at or above either threshold go through the workers', async () => {
    const src = join(work, 'thresholds');
    await writeTree(src, { 'dist/a.bin': seededBytes(10_000, 1), 'dist/b.txt': 'b' });
    // dist/, a.bin and b.txt: three entries of 10 001 bytes.
    expect((await saveWith(src, { inlineBelow: 10_001 })).compressedByWorkers).toBeGreaterThan(0);
    expect((await saveWith(src, { inlineBelow: 10_002 })).compressedByWorkers).toBe(0);
    expect((await saveWith(src, { inlineFilesBelow: 3 })).compressedByWorkers).toBeGreaterThan(0);
    expect((await saveWith(src, { inlineFilesBelow: 4 })).compressedByWorkers).toBe(0);
  });

  it('refuses bad thresholds, naming the field', async () => {
    const src = join(work, 'bad');
    await writeTree(src, { 'dist/a.txt': 'a' });
    await expect(saveWith(src, { inlineBelow: -1 })).rejects.toThrow(InvalidOptionError);
    await expect(saveWith(src, { inlineFilesBelow: 1.5 })).rejects.toThrow(/inlineFilesBelow/);
  });
});
