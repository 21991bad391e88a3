// Garbage collection of an image layout: mark everything reachable from `index.json` (walking
// indexes, manifests, configs, layers and subjects), then sweep unreachable blobs and abandoned
// temp files older than `minAgeMs`, under the `index.json` lock so tags cannot move meanwhile.
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest } from '../digest.js';
import { InvalidOptionError } from '../errors.js';
import { manifestReferences } from '../manifest.js';
import type { Descriptor, RequestOptions } from '../types.js';
import type { LayoutBlobs } from './blobs.js';
import { isMissing, type LayoutContext, MAX_MANIFEST_BYTES, TEMP_PREFIX } from './files.js';
import { lockIndex, readIndex } from './image-index.js';

/** Options of `LayoutStore.gc`. */
export interface LayoutGcOptions extends RequestOptions {
  /**
   * Unreferenced blobs and temp files younger than this are kept: they may belong to a save
   * in progress (blobs and manifests are pushed before the tag that references them).
   * @default 3600000 (one hour)
   */
  minAgeMs?: number;
}

/** What `LayoutStore.gc` removed. */
export interface LayoutGcResult {
  /** Digests of the removed blobs. */
  removed: string[];
  /** Bytes freed (blobs and stale temp files). */
  freedBytes: number;
}

/** Collects the layout's garbage. */
export async function collectGarbage(
  ctx: LayoutContext,
  blobs: LayoutBlobs,
  options: LayoutGcOptions = {},
): Promise<LayoutGcResult> {
  const minAgeMs = options.minAgeMs ?? 3_600_000;
  if (!Number.isFinite(minAgeMs) || minAgeMs < 0) {
    throw new InvalidOptionError('gc: options.minAgeMs must be a non-negative number');
  }
  const signal = options.signal;
  const result: LayoutGcResult = { removed: [], freedBytes: 0 };
  if ((await readIndex(ctx)) === undefined && !(await ctx.files.checkLayoutFile())) return result;
  const lock = await lockIndex(ctx, signal);
  try {
    const live = await mark(ctx, blobs, signal);
    const now = Date.now();
    for (const algorithm of ['sha256', 'sha512']) {
      const blobsDir = join(ctx.root, 'blobs', algorithm);
      let names: string[];
      try {
        names = await readdir(blobsDir);
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
      for (const name of names) {
        signal?.throwIfAborted();
        const path = join(blobsDir, name);
        const isTemp = name.startsWith(TEMP_PREFIX);
        const digest = `${algorithm}:${name}`;
        if (!isTemp && (!isDigest(digest) || live.has(digest))) continue;
        const s = await stat(path).catch(() => undefined);
        if (!s?.isFile() || now - s.mtimeMs < minAgeMs) continue;
        await unlink(path).catch(() => {});
        result.freedBytes += s.size;
        if (!isTemp) result.removed.push(digest);
      }
    }
  } finally {
    await lock.release();
  }
  return result;
}

/** Every digest reachable from `index.json`; blobs pushed meanwhile are protected by `minAgeMs`. */
async function mark(
  ctx: LayoutContext,
  blobs: LayoutBlobs,
  signal: AbortSignal | undefined,
): Promise<Set<string>> {
  const live = new Set<string>();
  const queue: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>[] = [
    ...((await readIndex(ctx))?.manifests ?? []),
  ];
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const d = queue.pop()!;
    if (live.has(d.digest)) continue;
    live.add(d.digest);
    const isManifest = /manifest|index/.test(d.mediaType) && d.size <= MAX_MANIFEST_BYTES;
    if (!isManifest) continue;
    const bytes = await blobs.readManifestBlob(d, signal).catch(() => undefined);
    if (bytes === undefined) continue;
    try {
      queue.push(...manifestReferences(bytes, { lenient: true }));
    } catch {
      // Not a JSON object: it references nothing we could know of.
    }
  }
  return live;
}
