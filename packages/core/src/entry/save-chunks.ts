/**
 * The chunk pipeline of a save: outputs → normalized tar → FastCDC chunks (pack worker) → zstd
 * and sha256 (codec workers) → pushed through the blob pusher, streaming with bounded memory.
 * A chunk the base entry already stores is reused as is; a chunk repeated within the save is
 * compressed once.
 */
import { setMaxListeners } from 'node:events';
import type { Descriptor } from '@task-cache/oci';
import { EntryTooLargeError } from '../errors.js';
import type { BaseEntry } from '../internal/base.js';
import type { ChunkParams } from '../internal/chunk.js';
import { getZstdCodec } from '../internal/zstd.js';
import { codecPool } from '../workers/codec-pool.js';
import { packChunks } from '../workers/pack.js';
import { createSlotPool, type Slot } from '../workers/slots.js';
import { CHUNK_MEDIA_TYPE, compressBound, type EntryConfig } from './format.js';
import type { SaveSettings } from './save-options.js';
import type { BlobPushing } from './save-push.js';
import type { TransferProgress } from './types.js';

/** What the pipeline produced: the layers in stream order and what the config records. */
export interface PushedChunks {
  layers: Descriptor[];
  chunks: EntryConfig['chunks'];
  chunksPushed: number;
  bytesTotal: number;
  files: number;
}

/** Packs, chunks, compresses and pushes the outputs of `o.dir`. */
export async function pushChunks(
  o: SaveSettings,
  params: ChunkParams,
  pusher: BlobPushing,
  base: BaseEntry | undefined,
  onProgress: ((progress: TransferProgress) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<PushedChunks> {
  const codec = getZstdCodec(o.codec).name;
  const pool = codecPool();
  let chunksPushed = 0;
  let bytesTotal = 0;
  let chunksDone = 0;
  const layers: Array<Descriptor | undefined> = [];
  const chunkInfos: EntryConfig['chunks'] = [];
  const progress = () =>
    onProgress?.({ phase: 'push', chunksDone, bytesDone: pusher.bytesPushed, bytesProcessed: bytesTotal });

  // Compressed chunks wait for their upload in reused shared-memory slots (the codec worker
  // writes each frame straight into one): no per-chunk buffer crosses threads or becomes garbage.
  const outSlots = createSlotPool(o.concurrency, compressBound(params.maxSize));

  // NOTE: the inner controller stops the packer and in-flight chunk work when the pipeline
  // fails part-way (or the caller aborts).
  const inner = new AbortController();
  // NOTE: our own signal, handed to every in-flight request and slot wait (bounded by the
  // concurrency options): no listener-leak warning for it.
  setMaxListeners(0, inner.signal);
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const job = packChunks({
    dir: o.dir,
    generates: o.generates,
    keepMtimes: o.keepMtimes,
    chunking: params,
    slots: pool.size + 2,
    signal: inner.signal,
  });
  // Chunks of this save by uncompressed digest: a repeated chunk is compressed once.
  const byDigest = new Map<string, Promise<Descriptor>>();
  const inflight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  const track = (p: Promise<void>) => {
    const t = p.then(
      () => {
        inflight.delete(t);
      },
      (err) => {
        inflight.delete(t);
        failure ??= { err };
        inner.abort(err);
      },
    );
    inflight.add(t);
  };
  try {
    for await (const c of job.chunks) {
      if (failure !== undefined) {
        c.release();
        break;
      }
      const index = layers.length;
      const size = c.data.byteLength;
      layers.push(undefined);
      chunkInfos.push({ size, digest: c.digest });
      bytesTotal += size;
      if (bytesTotal > o.maxEntrySize) {
        c.release();
        throw new EntryTooLargeError(`outputs exceed maxEntrySize (${o.maxEntrySize} bytes)`, {
          limit: o.maxEntrySize,
          size: bytesTotal,
        });
      }
      // Reuse: the base already stores this chunk (whatever compressed it): no compression,
      // no existence check, no upload.
      const reused = base?.chunks.get(c.digest);
      if (reused !== undefined) {
        c.release();
        layers[index] = reused;
        chunksDone++;
        progress();
        continue;
      }
      const same = byDigest.get(c.digest);
      if (same !== undefined) {
        c.release();
        track(
          same.then((d) => {
            layers[index] = d;
            chunksDone++;
            progress();
          }),
        );
        continue;
      }
      // NOTE: compression runs ahead of uploads while fewer than `concurrency` frames are
      // uploading (`outSlots` holds one frame per transfer), so memory stays bounded.
      while (inflight.size >= 2 * o.concurrency && failure === undefined) await Promise.race(inflight);
      let outSlot: Slot;
      try {
        outSlot = await outSlots.acquire(inner.signal);
      } catch (err) {
        c.release();
        throw err;
      }
      const work = (async () => {
        try {
          let out: { output: Uint8Array; digest: string };
          try {
            inner.signal.throwIfAborted();
            out = await pool.compress(codec, c.data, o.level, outSlot.view);
          } finally {
            c.release();
          }
          const desc: Descriptor = {
            mediaType: CHUNK_MEDIA_TYPE,
            digest: out.digest,
            size: out.output.byteLength,
          };
          if (await pusher.ensure(desc, out.output, inner.signal)) chunksPushed++;
          chunksDone++;
          progress();
          return desc;
        } finally {
          outSlot.release();
        }
      })();
      work.catch(() => {});
      byDigest.set(c.digest, work);
      track(
        work.then((d) => {
          layers[index] = d;
        }),
      );
    }
    await Promise.all(inflight);
    if (failure !== undefined) throw failure.err;
  } catch (err) {
    inner.abort(err);
    await Promise.allSettled(inflight);
    throw failure !== undefined && !(signal?.aborted ?? false) ? failure.err : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  signal?.throwIfAborted();
  return {
    layers: layers as Descriptor[],
    chunks: chunkInfos,
    chunksPushed,
    bytesTotal,
    files: job.stats.files,
  };
}
