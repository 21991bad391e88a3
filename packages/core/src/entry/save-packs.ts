/**
 * The chunk pipeline of a format version 2 save (docs/format.md §11): outputs → normalized tar →
 * FastCDC chunks → zstd per chunk (codec workers, in parallel) → appended in stream order to packs
 * whose boundaries are content-defined → each pack uploaded from its spool once closed, while the
 * next fills. A chunk the base entry stores is referenced where it is (its frame in a base layer,
 * which becomes a layer of the new entry as it is); a chunk repeated within the save is stored once.
 */
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Descriptor, ManifestBlobUnknownError } from '@task-cache/oci';
import { EntryTooLargeError } from '../errors.js';
import type { BaseEntry } from '../internal/base.js';
import type { ChunkParams } from '../internal/chunk.js';
import type { Slot } from '../workers/slots.js';
import { type ChunkRef, PACK_MEDIA_TYPE } from './format.js';
import { type PackRule, PackSpool, spoolPath } from './pack-spool.js';
import { isMissing } from './resolve.js';
import { chunkSource, type PushedChunks } from './save-chunks.js';
import type { SaveSettings } from './save-options.js';
import type { BlobPushing } from './save-push.js';
import type { EntryReader, TransferProgress } from './types.js';

/** Compressed bytes read with one request when repacking (frames adjacent in a base layer). */
const REPACK_RUN_BYTES = 8 * 1024 * 1024;
/** Layers an entry may hold above one per `minSize` of its data before small ones are repacked. */
const LAYER_SLACK = 8;
/** The slack stops here: an entry of up to 4 GiB keeps at most 256 layers (16 MiB packs). */
const LAYER_CEILING = 256;

/**
 * The layers an entry of `bytesTotal` uncompressed bytes may keep before a warm save repacks the
 * base packs it uses least (docs/format.md §11.4): one per `minSize` plus {@link LAYER_SLACK}, the
 * slack not taking it above {@link LAYER_CEILING}.
 * @internal exported for tests.
 */
export function layerBudget(bytesTotal: number, minSize: number): number {
  const need = Math.ceil(bytesTotal / minSize);
  return Math.max(need, Math.min(need + LAYER_SLACK, LAYER_CEILING));
}

/** Packs uploading at once (each spooled: at most this many × 64 MiB of temporary files). */
const MAX_PACK_UPLOADS = 2;

/** A layer of the new entry: a pack of this save (its descriptor once closed) or a base layer. */
interface LayerRef {
  descriptor: Descriptor | undefined;
  /** Chunks this save wrote into it (0 for a base layer). */
  chunks: number;
}

interface FrameRef {
  layer: LayerRef;
  offset: number;
  length: number;
  /** The chunk's uncompressed size and digest (the packing rule reads them when it is repacked). */
  size: number;
  digest: string;
}

/** Packs, chunks, compresses and pushes the outputs of `o.dir` as format version 2 packs. */
export async function pushPacks(
  store: EntryReader,
  o: SaveSettings,
  params: ChunkParams,
  pusher: BlobPushing,
  base: BaseEntry | undefined,
  onProgress: ((progress: TransferProgress) => void) | undefined,
  signal: AbortSignal | undefined,
  rule: PackRule,
): Promise<PushedChunks> {
  let chunksPushed = 0;
  let bytesTotal = 0;
  let chunksDone = 0;
  const progress = () =>
    onProgress?.({ phase: 'push', chunksDone, bytesDone: pusher.bytesPushed, bytesProcessed: bytesTotal });
  const inner = new AbortController();
  // NOTE: our own signal, handed to every in-flight request and slot wait: no listener-leak warning.
  setMaxListeners(0, inner.signal);
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });

  const spoolDir = await mkdtemp(join(tmpdir(), 'tc-packs-'));
  const infos: Array<{ size: number; digest: string }> = [];
  const frames: Array<FrameRef | undefined> = [];
  /** Chunks repeated within the save: index → index of the first occurrence. */
  const repeats = new Map<number, number>();
  const firstOf = new Map<string, number>();
  const baseLayers = new Map<string, LayerRef>();

  let spools = 0;
  // A small save (compressed on this thread, no slots) keeps its pack in memory.
  const { job, compress, outSlots } = await chunkSource(o, params, inner.signal, signal).catch(
    async (err: unknown) => {
      await rm(spoolDir, { recursive: true, force: true });
      throw err;
    },
  );
  const inMemory = outSlots === undefined ? Number.POSITIVE_INFINITY : 0;
  let spool = new PackSpool(spoolPath(spoolDir, spools++), rule, inMemory);
  let open: LayerRef = { descriptor: undefined, chunks: 0 };
  const uploads = new Set<Promise<void>>();
  const appends = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  const fail = (err: unknown) => {
    failure ??= { err };
    inner.abort(err);
  };
  const track = (set: Set<Promise<void>>, p: Promise<void>) => {
    const t = p.then(
      () => {
        set.delete(t);
      },
      (err) => {
        set.delete(t);
        fail(err);
      },
    );
    set.add(t);
  };

  /** Closes the open pack and starts its upload (waiting while too many are uploading). */
  const closePack = async () => {
    if (spool.size === 0) return;
    const closing = spool;
    const layer = open;
    spool = new PackSpool(spoolPath(spoolDir, spools++), rule, inMemory);
    open = { descriptor: undefined, chunks: 0 };
    const pack = await closing.finish();
    layer.descriptor = pack.descriptor;
    while (uploads.size >= MAX_PACK_UPLOADS && failure === undefined) await Promise.race(uploads);
    inner.signal.throwIfAborted();
    track(
      uploads,
      (async () => {
        try {
          if (await pusher.ensure(pack.descriptor, pack.body, inner.signal)) chunksPushed += layer.chunks;
          progress();
        } finally {
          await pack.dispose();
        }
      })(),
    );
  };

  // Frames are appended in stream order: each append waits for the previous one.
  let appending: Promise<void> = Promise.resolve();
  try {
    for await (const c of job.chunks) {
      if (failure !== undefined) {
        c.release();
        break;
      }
      const index = infos.length;
      const size = c.data.byteLength;
      const digest = c.digest;
      infos.push({ size, digest });
      frames.push(undefined);
      bytesTotal += size;
      if (bytesTotal > o.maxEntrySize) {
        c.release();
        throw new EntryTooLargeError(`outputs exceed maxEntrySize (${o.maxEntrySize} bytes)`, {
          limit: o.maxEntrySize,
          size: bytesTotal,
        });
      }
      // Reuse: the base stores this chunk (in a pack or as a version 1 chunk layer): its frame is
      // referenced where it is; no compression, no upload.
      const reused = base?.chunks.get(digest);
      if (reused !== undefined) {
        c.release();
        let layer = baseLayers.get(reused.layer.digest);
        if (layer === undefined) {
          layer = {
            descriptor: { mediaType: PACK_MEDIA_TYPE, digest: reused.layer.digest, size: reused.layer.size },
            chunks: 0,
          };
          baseLayers.set(reused.layer.digest, layer);
        }
        frames[index] = { layer, offset: reused.offset, length: reused.length, size, digest };
        chunksDone++;
        progress();
        continue;
      }
      const first = firstOf.get(digest);
      if (first !== undefined) {
        c.release();
        repeats.set(index, first);
        chunksDone++;
        continue;
      }
      firstOf.set(digest, index);
      // NOTE: compression runs ahead of the appends while fewer than 2 × `concurrency` frames wait.
      while (appends.size >= 2 * o.concurrency && failure === undefined) await Promise.race(appends);
      let outSlot: Slot | undefined;
      try {
        outSlot = await outSlots?.acquire(inner.signal);
      } catch (err) {
        c.release();
        throw err;
      }
      const compressed = (async () => {
        try {
          inner.signal.throwIfAborted();
          return await compress(c.data, outSlot?.view, true);
        } finally {
          c.release();
        }
      })();
      compressed.catch(() => {});
      const previous = appending;
      appending = (async () => {
        try {
          await previous;
          const { output } = await compressed;
          inner.signal.throwIfAborted();
          if (spool.wouldOverflow(size)) await closePack();
          const offset = await spool.append(output, size);
          open.chunks++;
          frames[index] = { layer: open, offset, length: output.byteLength, size, digest };
          outSlot?.release();
          outSlot = undefined;
          if (spool.closesAfter(digest)) await closePack();
          chunksDone++;
          progress();
        } finally {
          outSlot?.release();
        }
      })();
      track(appends, appending);
    }
    await Promise.all(appends);
    if (failure !== undefined) throw failure.err;
    // Repacking: the live frames of base layers this entry uses little of go into new packs.
    for (const layer of repackable(frames, baseLayers, bytesTotal, rule)) {
      const d = layer.descriptor as Descriptor;
      const moved = new Map<number, FrameRef>();
      const wanted = [
        ...new Map(
          frames
            .filter((f): f is FrameRef => f !== undefined && f.layer === layer)
            .map((f) => [f.offset, f] as const),
        ).values(),
      ].sort((a, b) => a.offset - b.offset);
      for (const run of frameRuns(wanted)) {
        let bytes: Uint8Array;
        try {
          bytes = await readRange(store, d, run.offset, run.length, inner.signal);
        } catch (err) {
          if (!isMissing(err)) throw err;
          // The base lost this blob: the retry without a base compresses everything again.
          throw new ManifestBlobUnknownError(`base layer ${d.digest} is missing`, {
            missingDigests: [d.digest],
            cause: err,
          });
        }
        for (const f of run.frames) {
          if (spool.wouldOverflow(f.size)) await closePack();
          const at = f.offset - run.offset;
          const offset = await spool.append(bytes.subarray(at, at + f.length), f.size);
          open.chunks++;
          moved.set(f.offset, { layer: open, offset, length: f.length, size: f.size, digest: f.digest });
          if (spool.closesAfter(f.digest)) await closePack();
        }
      }
      frames.forEach((f, i) => {
        if (f?.layer === layer) frames[i] = moved.get(f.offset);
      });
    }
    await closePack();
    await Promise.all(uploads);
    const failed = failure as { err: unknown } | undefined;
    if (failed !== undefined) throw failed.err;
  } catch (err) {
    inner.abort(err);
    await Promise.allSettled([...appends, ...uploads]);
    throw failure !== undefined && !(signal?.aborted ?? false) ? failure.err : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await spool.discard();
    await rm(spoolDir, { recursive: true, force: true });
  }
  signal?.throwIfAborted();

  // The manifest's layers in the order the stream first uses them; each chunk names its frame.
  const layers: Descriptor[] = [];
  const layerIndex = new Map<string, number>();
  const chunks: ChunkRef[] = infos.map((info, i) => {
    const f = frames[repeats.get(i) ?? i] as FrameRef;
    const d = f.layer.descriptor as Descriptor;
    let at = layerIndex.get(d.digest);
    if (at === undefined) {
      at = layers.length;
      layers.push(d);
      layerIndex.set(d.digest, at);
    }
    return { size: info.size, digest: info.digest, layer: at, offset: f.offset, length: f.length };
  });
  return { layers, chunks, chunksPushed, bytesTotal, files: job.stats.files, version: 2, packing: rule };
}

/**
 * The base layers to repack (docs/format.md §11.4): those of which this entry references less
 * than half the bytes, then — while the entry has more layers than one per `minSize` of its data
 * plus {@link LAYER_SLACK} ({@link layerBudget}) — those it uses least, so that warm saves do not
 * add layers forever.
 */
function repackable(
  frames: ReadonlyArray<FrameRef | undefined>,
  baseLayers: ReadonlyMap<string, LayerRef>,
  bytesTotal: number,
  rule: PackRule,
): LayerRef[] {
  const live = new Map<LayerRef, Map<number, number>>();
  const layers = new Set<LayerRef>();
  for (const f of frames) {
    if (f === undefined) continue;
    layers.add(f.layer);
    if (f.layer.chunks > 0) continue;
    let offsets = live.get(f.layer);
    if (offsets === undefined) {
      offsets = new Map();
      live.set(f.layer, offsets);
    }
    offsets.set(f.offset, f.length);
  }
  const used = (l: LayerRef) => {
    let n = 0;
    for (const len of live.get(l)?.values() ?? []) n += len;
    return n;
  };
  const chosen = new Set<LayerRef>();
  for (const l of baseLayers.values()) {
    if (live.has(l) && used(l) * 2 < (l.descriptor as Descriptor).size) chosen.add(l);
  }
  const budget = layerBudget(bytesTotal, rule.minSize);
  // Repacked frames go into about one new layer per `minSize`.
  let repackedBytes = 0;
  for (const l of chosen) repackedBytes += used(l);
  const count = () => layers.size - chosen.size + Math.ceil(repackedBytes / rule.minSize);
  const rest = [...baseLayers.values()]
    .filter((l) => live.has(l) && !chosen.has(l))
    .sort((a, b) => used(a) - used(b));
  for (const l of rest) {
    if (count() <= budget) break;
    chosen.add(l);
    repackedBytes += used(l);
  }
  return [...chosen];
}

/** Frames sorted by offset, grouped into adjacent runs of at most {@link REPACK_RUN_BYTES}. */
function frameRuns(
  frames: readonly FrameRef[],
): Array<{ offset: number; length: number; frames: FrameRef[] }> {
  const runs: Array<{ offset: number; length: number; frames: FrameRef[] }> = [];
  let run: (typeof runs)[number] | undefined;
  for (const f of frames) {
    if (
      run !== undefined &&
      f.offset === run.offset + run.length &&
      run.length + f.length <= REPACK_RUN_BYTES
    ) {
      run.frames.push(f);
      run.length += f.length;
      continue;
    }
    run = { offset: f.offset, length: f.length, frames: [f] };
    runs.push(run);
  }
  return runs;
}

/** `length` bytes of blob `d` from `offset` (a whole-blob read when that is all of it). */
async function readRange(
  store: EntryReader,
  d: Descriptor,
  offset: number,
  length: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const whole = offset === 0 && length === d.size;
  let pos = 0;
  for await (const p of await store.fetchBlob(d, {
    signal,
    contentVerified: true,
    ...(whole ? {} : { range: { offset, length } }),
  })) {
    if (pos + p.byteLength > length) throw new Error(`blob ${d.digest} is longer than asked`);
    out.set(p, pos);
    pos += p.byteLength;
  }
  if (pos !== length) throw new Error(`blob ${d.digest} ended after ${pos} of ${length} bytes`);
  return out;
}
