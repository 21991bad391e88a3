/**
 * Existence checks before uploads (SaveEntryOptions.existenceChecks): `always` asks the store
 * about every new chunk; `adaptive` stops asking after a run of misses (a cold save of new
 * content) and keeps asking while the store answers "yes" (content it already has).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { InvalidOptionError } from '../errors.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
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

describe('existence checks', () => {
  it('always: one check per new blob (every chunk and the config)', async () => {
    const store = countingStore(createMemoryStore());
    const r = await saveEntry(store, opts('always', { existenceChecks: 'always' }));
    expect(r.chunksTotal).toBeGreaterThan(40);
    expect(r.chunksPushed).toBe(r.chunksTotal);
    expect(store.counts.blobExists).toBe(r.chunksTotal + 1);
    expect(store.counts.pushBlob).toBe(r.chunksTotal + 1);
  });

  it('adaptive (default): a cold save stops checking after a run of misses, pushes everything, restores', async () => {
    const store = countingStore(createMemoryStore());
    const r = await saveEntry(store, opts('cold'));
    expect(r.chunksPushed).toBe(r.chunksTotal);
    expect(store.counts.pushBlob).toBe(r.chunksTotal + 1);
    // 8 misses (a few more may be in flight when the 8th answers), then one probe in 16.
    expect(store.counts.blobExists).toBeGreaterThanOrEqual(8);
    expect(store.counts.blobExists).toBeLessThan(r.chunksTotal / 2);
    const out = join(root, 'restored');
    await mkdir(out);
    await restoreEntry(store, { dir: out, generates: ['dist/**'], tag: 'cold', stateDir: false });
    expect(await treeHash(out, 'dist')).toBe(await treeHash(dir, 'dist'));
  });

  it('adaptive: content the store already has keeps being checked, so nothing is pushed again', async () => {
    const inner = createMemoryStore();
    await saveEntry(inner, opts('first'));
    // A fresh wrapper: nothing is known in-process, no base: only the checks can find the chunks.
    const store = countingStore(inner);
    const r = await saveEntry(store, opts('second'));
    expect(r.chunksPushed).toBe(0);
    expect(store.counts.blobExists).toBe(r.chunksTotal + 1);
    // Only the new config (its `created` time differs) is uploaded.
    expect(store.counts.pushBlob).toBe(1);
  });

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
