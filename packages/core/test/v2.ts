/**
 * Helpers of the format version 2 tests (docs/format.md §11): mixed build outputs of a given
 * size, an entry's manifest and config read back from a store, and the two rules a reader of
 * the stored documents can check on its own — the packing rule (§11.1) and the runs a restore
 * fetches (§11.3). Written from the document, not from the code under test, so that the tests
 * compare the implementation against the format.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OciStore } from '@task-cache/oci';
import { expect } from 'vitest';
import { seededBytes } from './helpers.js';

const MiB = 1024 * 1024;

/**
 * Writes ~`mib` MiB of outputs under `dir/dist`, like a build's: half incompressible files, half
 * text that compresses (hex lines), of 4 MiB each (or `mib`/2 when smaller), and one 10 KiB file
 * between two text files in the middle of the stream; returns that file's path (changing it is a
 * one-small-file change). Seeded: every run and every runtime writes the same bytes.
 */
export async function writeMixed(dir: string, mib = 40, seed = 0): Promise<string> {
  await mkdir(join(dir, 'dist'), { recursive: true });
  const fileSize = Math.min(4 * MiB, Math.floor((mib * MiB) / 2));
  const files = Math.max(2, Math.round((mib * MiB) / fileSize));
  const mid = Math.floor(files / 2);
  const name = (i: number) => `dist/${String(i).padStart(2, '0')}`;
  for (let i = 0; i < files; i++) {
    // … bin txt (mid).txt | (mid+1).txt bin txt …: the middle file sorts between two texts.
    const text = i <= mid ? (mid - i) % 2 === 0 : (i - mid) % 2 === 1;
    if (text) {
      const hex = seededBytes(fileSize / 2, seed * 1000 + 100 + i).toString('hex');
      await writeFile(join(dir, `${name(i)}.txt`), hex.replace(/(.{64})/g, '$1\n'));
    } else {
      await writeFile(join(dir, `${name(i)}.bin`), seededBytes(fileSize, seed * 1000 + i));
    }
  }
  const middle = `${name(mid)}_mid.txt`;
  await writeFile(join(dir, middle), seededBytes(10 * 1024, 7000));
  return middle;
}

/** A version 2 config chunk as stored. */
export interface StoredChunk {
  size: number;
  digest: string;
  layer: number;
  offset: number;
  length: number;
}

/** An entry read back from a store: the manifest document, its layers and the config document. */
export interface StoredEntry {
  manifest: Record<string, unknown> & {
    artifactType?: string;
    config: { mediaType: string; digest: string; size: number };
    layers: Array<{ mediaType: string; digest: string; size: number }>;
  };
  config: Record<string, unknown> & { formatVersion: number; chunks: StoredChunk[]; size: number };
}

/** Reads the (single) manifest tagged `tag` and its config blob. */
export async function readEntry(store: OciStore, tag: string): Promise<StoredEntry> {
  const m = await store.fetchManifest(tag);
  if (m === undefined) throw new Error(`no manifest tagged ${tag}`);
  const manifest = JSON.parse(Buffer.from(m.bytes).toString('utf8'));
  const parts: Uint8Array[] = [];
  for await (const p of await store.fetchBlob(manifest.config)) parts.push(p);
  const config = JSON.parse(Buffer.concat(parts).toString('utf8'));
  return { manifest, config };
}

/**
 * Checks the packing rule of docs/format.md §11.1 on a cold save (every chunk written by it, in
 * stream order, packs in order): walking the chunks, a pack closes after chunk `c` exactly when it
 * holds at least `minSize` uncompressed bytes and `c`'s digest's first byte is below `mask`, or
 * when the next chunk would take it above `maxSize`; the frames of a pack follow each other from
 * offset 0 and fill it. Repeated chunks (the same digest again) are stored once and skipped.
 */
export function expectPackingRule(
  entry: StoredEntry,
  rule = { minSize: 16 * MiB, maxSize: 64 * MiB, mask: 32 },
): void {
  const { chunks } = entry.config;
  const seen = new Set<string>();
  const firsts = chunks.filter((c) => !seen.has(c.digest) && seen.add(c.digest));
  let layer = 0;
  let uncompressed = 0;
  let offset = 0;
  for (const [i, c] of firsts.entries()) {
    expect(c.layer, `chunk ${i}'s pack`).toBe(layer);
    expect(c.offset, `chunk ${i}'s offset`).toBe(offset);
    uncompressed += c.size;
    offset += c.length;
    const next = firsts[i + 1];
    if (next === undefined) break;
    const closes =
      (uncompressed >= rule.minSize && Number.parseInt(c.digest.slice(7, 9), 16) < rule.mask) ||
      uncompressed + next.size > rule.maxSize;
    if (closes) {
      expect(entry.manifest.layers[layer]?.size, `pack ${layer} ends after its last frame`).toBe(offset);
      layer++;
      uncompressed = 0;
      offset = 0;
    }
  }
  expect(entry.manifest.layers.length, 'one layer per pack').toBe(layer + 1);
  expect(entry.manifest.layers[layer]?.size, 'the last pack ends after its last frame').toBe(offset);
}

/** A run of docs/format.md §11.3: adjacent frames of one layer, fetched with one request. */
export interface ExpectedRun {
  layer: number;
  offset: number;
  length: number;
  /** `true` when the run is the whole layer (no `Range`). */
  whole: boolean;
}

/**
 * The runs a restore of `entry` fetches (§11.3): walking the chunks in stream order, consecutive
 * chunks of one layer whose frames are adjacent form a run, cut at `maxBytes` compressed bytes.
 */
export function expectedRuns(entry: StoredEntry, maxBytes = 8 * MiB): ExpectedRun[] {
  const runs: ExpectedRun[] = [];
  let run: ExpectedRun | undefined;
  for (const c of entry.config.chunks) {
    if (
      run !== undefined &&
      run.layer === c.layer &&
      c.offset === run.offset + run.length &&
      run.length + c.length <= maxBytes
    ) {
      run.length += c.length;
      continue;
    }
    run = { layer: c.layer, offset: c.offset, length: c.length, whole: false };
    runs.push(run);
  }
  for (const r of runs)
    r.whole = r.offset === 0 && r.length === (entry.manifest.layers[r.layer]?.size ?? Number.NaN);
  return runs;
}
