// Format version 2, repacking (docs/format.md §11.4): a warm save moves the frames it still uses
// out of base packs it uses less than half of, and keeps the layer count within one per 16 MiB of
// data plus a small slack however many warm saves follow each other.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isolateCacheDir, removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { createMemoryStore } from '../store/memory.js';
import { PACK_MEDIA_TYPE } from './format.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

isolateCacheDir();
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => removeDir(d)));
});
async function dir(label: string): Promise<string> {
  const d = await tempDir(`tc-repack-${label}-`);
  dirs.push(d);
  return d;
}

async function layersOf(store: ReturnType<typeof createMemoryStore>, tag: string) {
  const m = await store.fetchManifest(tag);
  const doc = JSON.parse(Buffer.from(m!.bytes).toString()) as {
    layers: Array<{ mediaType: string; digest: string; size: number }>;
  };
  return doc.layers;
}

describe('format v2 repacking', () => {
  it('a warm save that keeps a fifth of the outputs repacks their frames out of the sparse base packs', async () => {
    const store = createMemoryStore();
    const src = await dir('sparse');
    const state = join(src, '.state');
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 10; i++) files[`dist/f${i}.bin`] = seededBytes(4 * 1024 * 1024, 100 + i);
    await writeTree(src, files);
    const save = (tag: string) =>
      saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag,
        task: 't',
        key: tag,
        stateDir: state,
        formatVersion: 2,
      });
    const cold = await save('cold');
    const coldLayers = await layersOf(store, 'cold');
    expect(cold.blobsTotal).toBe(coldLayers.length);
    expect(coldLayers.length).toBeGreaterThanOrEqual(2);
    expect(coldLayers.length).toBeLessThanOrEqual(Math.ceil(cold.bytesTotal / (16 * 1024 * 1024)) + 1);
    for (let i = 2; i < 10; i++) await rm(join(src, `dist/f${i}.bin`));
    const warm = await save('warm');
    const warmLayers = await layersOf(store, 'warm');
    // f0 and f1 (8 MiB) sit in the first pack(s): a base pack kept is one the entry uses at least half of.
    const kept = warmLayers.filter((l) => coldLayers.some((c) => c.digest === l.digest));
    const config = await configOf(store, 'warm');
    for (const k of kept) {
      const i = warmLayers.indexOf(k);
      const used = new Map<number, number>();
      for (const c of config.chunks) if (c.layer === i) used.set(c.offset, c.length);
      const live = [...used.values()].reduce((a, b) => a + b, 0);
      expect(live * 2).toBeGreaterThanOrEqual(k.size);
    }
    for (const l of warmLayers) expect(l.mediaType).toBe(PACK_MEDIA_TYPE);
    // Nothing was compressed again: the repacked frames are copied, and only the tar's tail is new.
    expect(warm.chunksTotal).toBeGreaterThan(0);
    const out = await dir('sparse-out');
    await restoreEntry(store, { dir: out, generates: ['dist/**'], tag: 'warm', stateDir: state });
    expect(await treeHash(out, 'dist')).toBe(await treeHash(src, 'dist'));
  });

  it('twelve warm saves in a row keep the layer count within the budget, and every entry restores', async () => {
    const store = createMemoryStore();
    const src = await dir('chain');
    const state = join(src, '.state');
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++)
      files[`dist/f${String(i).padStart(2, '0')}.bin`] = seededBytes(64 * 1024, 300 + i);
    await writeTree(src, files);
    const budget = 1 + 8; // one layer per 16 MiB of data (here < 1 MiB) plus the slack
    const counts: number[] = [];
    for (let round = 0; round < 13; round++) {
      if (round > 0)
        await writeTree(src, {
          [`dist/f${String(round - 1).padStart(2, '0')}.bin`]: seededBytes(64 * 1024, 900 + round),
        });
      const tag = `r${round}`;
      const saved = await saveEntry(store, {
        dir: src,
        generates: ['dist/**'],
        tag,
        task: 'chain',
        key: tag,
        stateDir: state,
        formatVersion: 2,
        avgChunkSize: 16 * 1024,
        inlineBelow: 0,
      });
      counts.push(saved.blobsTotal);
      const out = await dir(`chain-out-${round}`);
      await restoreEntry(store, { dir: out, generates: ['dist/**'], tag, stateDir: state });
      expect(await treeHash(out, 'dist')).toBe(await treeHash(src, 'dist'));
    }
    // Without repacking every warm save adds a pack: 13 layers by the last one.
    expect(Math.max(...counts.slice(0, 9))).toBe(counts[8]);
    expect(counts[8]).toBeGreaterThan(4);
    for (const c of counts) expect(c).toBeLessThanOrEqual(budget + 1);
  });
});

async function configOf(store: ReturnType<typeof createMemoryStore>, tag: string) {
  const m = await store.fetchManifest(tag);
  const doc = JSON.parse(Buffer.from(m!.bytes).toString()) as {
    config: { digest: string; size: number; mediaType: string };
  };
  const parts: Uint8Array[] = [];
  for await (const p of await store.fetchBlob(doc.config)) parts.push(p);
  return JSON.parse(Buffer.concat(parts).toString()) as {
    chunks: Array<{ size: number; digest: string; layer: number; offset: number; length: number }>;
  };
}
