/**
 * Existence checks before uploads (SaveEntryOptions.existenceChecks): `always` asks the store
 * about every new blob; `adaptive` stops asking after a run of misses (a cold save of new
 * content) and keeps asking while the store answers "yes" (content it already has). A blob is a
 * chunk in format version 1 and a pack of frames in version 2 (docs/format.md §11.4: existence
 * checks apply to whole packs).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { InvalidOptionError } from '../errors.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore, type MemoryStore } from '../store/memory.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';
import type { SaveEntryOptions } from './types.js';

let root: string;
let dir: string;
beforeAll(async () => {
  root = await tempDir('tc-exist-');
  dir = join(root, 'task');
  // ~3 MiB of incompressible bytes → ~48 chunks of 64 KiB average, all distinct.
  await writeTree(dir, {
    'dist/a.bin': seededBytes(2 * 1024 * 1024, 1),
    'dist/b.bin': seededBytes(1024 * 1024, 2),
  });
});
afterAll(async () => {
  await removeDir(root);
});

const opts = (tag: string, extra: Partial<SaveEntryOptions> = {}): SaveEntryOptions => ({
  dir,
  generates: ['dist/**'],
  tag,
  task: 'build',
  key: tag,
  avgChunkSize: 64 * 1024,
  base: false,
  pointer: false,
  stateDir: false,
  ...extra,
});

/**
 * Per format version: the store and save options that make ~50 new blobs of the 3 MiB. Version 1:
 * ~48 chunks of 64 KiB. Version 2: a 3 MiB cold save is one pack at the default sizes, so the
 * store declares a 144 KiB blob cap (as the Redis store does), which cuts packs of 40–79 KiB
 * (docs/format.md §11.1), and the chunks are 16 KiB (at most 64 KiB, below the cap).
 */
const versions = [
  {
    formatVersion: 1 as const,
    store: (): MemoryStore => createMemoryStore(),
    extra: { formatVersion: 1 } as Partial<SaveEntryOptions>,
  },
  {
    formatVersion: 2 as const,
    store: (): MemoryStore => Object.assign(createMemoryStore(), { limits: { maxEntrySize: 144 * 1024 } }),
    extra: { formatVersion: 2, avgChunkSize: 16 * 1024 } as Partial<SaveEntryOptions>,
  },
];

describe.each(versions)('existence checks (format v$formatVersion)', ({
  formatVersion,
  store: makeStore,
  extra,
}) => {
  it('always: one check per new blob (every chunk or pack, and the config)', async () => {
    const store = countingStore(makeStore());
    const r = await saveEntry(store, opts('always', { ...extra, existenceChecks: 'always' }));
    expect(r.formatVersion).toBe(formatVersion);
    expect(r.blobsTotal).toBeGreaterThan(40);
    // Version 1: a blob per chunk; version 2: packs of several chunks each.
    if (formatVersion === 1) expect(r.blobsTotal).toBe(r.chunksTotal);
    else expect(r.blobsTotal).toBeLessThan(r.chunksTotal / 2);
    expect(r.chunksPushed).toBe(r.chunksTotal);
    expect(store.counts.blobExists).toBe(r.blobsTotal + 1);
    expect(store.counts.pushBlob).toBe(r.blobsTotal + 1);
  });

  it('adaptive (default): a cold save stops checking after a run of misses, pushes everything, restores', async () => {
    const store = countingStore(makeStore());
    const r = await saveEntry(store, opts('cold', extra));
    expect(r.chunksPushed).toBe(r.chunksTotal);
    expect(store.counts.pushBlob).toBe(r.blobsTotal + 1);
    // 8 misses (a few more may be in flight when the 8th answers), then one probe in 16.
    expect(store.counts.blobExists).toBeGreaterThanOrEqual(8);
    expect(store.counts.blobExists).toBeLessThan(r.blobsTotal / 2);
    const out = join(root, `restored-v${formatVersion}`);
    await mkdir(out);
    await restoreEntry(store, { dir: out, generates: ['dist/**'], tag: 'cold', stateDir: false });
    expect(await treeHash(out, 'dist')).toBe(await treeHash(dir, 'dist'));
  });

  it('adaptive: content the store already has keeps being checked, so nothing is pushed again', async () => {
    const inner = makeStore();
    const first = await saveEntry(inner, opts('first', extra));
    // A fresh wrapper: nothing is known in-process, no base: only the checks can find the blobs
    // (version 2: the same chunks cut the same packs, byte for byte).
    const store = countingStore(inner);
    const r = await saveEntry(store, opts('second', extra));
    expect(r.blobsTotal).toBe(first.blobsTotal);
    expect(r.chunksPushed).toBe(0);
    expect(store.counts.blobExists).toBe(r.blobsTotal + 1);
    // Only the new config (its `created` time differs) is uploaded.
    expect(store.counts.pushBlob).toBe(1);
  });
});

describe('existence checks: options', () => {
  it('refuses an unknown mode with an error naming the option', async () => {
    const store = createMemoryStore();
    await expect(
      saveEntry(store, opts('bad', { existenceChecks: 'never' as 'always' })),
    ).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(saveEntry(store, opts('bad', { existenceChecks: 'never' as 'always' }))).rejects.toThrow(
      /existenceChecks/,
    );
  });
});
