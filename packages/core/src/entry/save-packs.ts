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
import type { Descriptor } from '@task-cache/oci';
import { EntryTooLargeError } from '../errors.js';
import type { BaseEntry } from '../internal/base.js';
import type { ChunkParams } from '../internal/chunk.js';
import type { Slot } from '../workers/slots.js';
import { type ChunkRef, PACK_MEDIA_TYPE } from './format.js';
import { type PackRule, PackSpool, spoolPath } from './pack-spool.js';
import { chunkSource, type PushedChunks } from './save-chunks.js';
import type { SaveSettings } from './save-options.js';
import type { BlobPushing } from './save-push.js';
import type { TransferProgress } from './types.js';

/** Packs uploading at once (each spooled: at most this many × 64 MiB of temporary files). */
const MAX_PACK_UPLOADS = 4;

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
}

/** Packs, chunks, compresses and pushes the outputs of `o.dir` as format version 2 packs. */
export async function pushPacks(
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
  let spool = new PackSpool(spoolPath(spoolDir, spools++), rule);
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
    spool = new PackSpool(spoolPath(spoolDir, spools++), rule);
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
  const { job, compress, outSlots } = await chunkSource(o, params, inner.signal, signal);
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
        frames[index] = { layer, offset: reused.offset, length: reused.length };
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
          return await compress(c.data, outSlot?.view);
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
          frames[index] = { layer: open, offset, length: output.byteLength };
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
    if (failure === undefined) {
      await closePack();
      await Promise.all(uploads);
    }
    if (failure !== undefined) throw failure.err;
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
