/**
 * The chunk pipeline of a save: outputs → normalized tar → FastCDC chunks (pack worker) → zstd
 * and sha256 (codec workers) → pushed through the blob pusher, streaming with bounded memory.
 * A chunk the base entry already stores is reused as is; a chunk repeated within the save is
 * compressed once. Small outputs (below `inlineBelow` bytes and `inlineFilesBelow` entries) are
 * packed and compressed on the calling thread instead, by the pack worker's own code
 * (workers/pack-core.ts): no worker started, no worker module loaded (issue 14).
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Descriptor } from '@task-cache/oci';
import { EntryTooLargeError } from '../errors.js';
import type { BaseEntry } from '../internal/base.js';
import type { ChunkParams } from '../internal/chunk.js';
import { compressFrameSync, getZstdCodec } from '../internal/zstd.js';
import { failureToError } from '../workers/errors.js';
import { failureOf } from '../workers/failure.js';
import type { PackedChunk, PackJob } from '../workers/pack.js';
import { packSync } from '../workers/pack-core.js';
import type { PackOutput } from '../workers/protocol.js';
import type { Slot, SlotPool } from '../workers/slots.js';
import { listSmallOutputsSync } from '../workers/walk.js';
import { CHUNK_MEDIA_TYPE, compressBound, type EntryConfig } from './format.js';
import type { SaveSettings } from './save-options.js';
import type { BlobPushing } from './save-push.js';
import type { TransferProgress } from './types.js';

/** What the pipeline produced: the layers in stream order and what the config records. */
export interface PushedChunks {
  /** The format version the layers are in (1: one chunk per layer; 2: packs). */
  version: 1 | 2;
  /** Version 2: the packing rule's sizes used. */
  packing?: { minSize: number; maxSize: number; mask: number };
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
  let chunksPushed = 0;
  let bytesTotal = 0;
  let chunksDone = 0;
  const layers: Array<Descriptor | undefined> = [];
  const chunkInfos: EntryConfig['chunks'] = [];
  const progress = () =>
    onProgress?.({ phase: 'push', chunksDone, bytesDone: pusher.bytesPushed, bytesProcessed: bytesTotal });

  // NOTE: the inner controller stops the packer and in-flight chunk work when the pipeline
  // fails part-way (or the caller aborts).
  const inner = new AbortController();
  // NOTE: our own signal, handed to every in-flight request and slot wait (bounded by the
  // concurrency options): no listener-leak warning for it.
  setMaxListeners(0, inner.signal);
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const { job, compress, outSlots } = await chunkSource(o, params, inner.signal, signal);
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
      // (Version 1 reuses only a chunk that is a whole layer of the base, not a frame of a pack.)
      const frame = base?.chunks.get(c.digest);
      const reused =
        frame !== undefined && frame.offset === 0 && frame.length === frame.layer.size
          ? { mediaType: CHUNK_MEDIA_TYPE, digest: frame.layer.digest, size: frame.layer.size }
          : undefined;
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
      let outSlot: Slot | undefined;
      try {
        outSlot = await outSlots?.acquire(inner.signal);
      } catch (err) {
        c.release();
        throw err;
      }
      const work = (async () => {
        try {
          let out: { output: Uint8Array; digest: string };
          try {
            inner.signal.throwIfAborted();
            out = await compress(c.data, outSlot?.view);
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
          outSlot?.release();
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
    version: 1,
  };
}

/** The chunks of a save and how to compress them (see {@link chunkSource}). */
export interface ChunkSource {
  job: PackJob;
  /**
   * Compresses a chunk into `into` (a shared slot) or a fresh buffer; the frame and its digest
   * (empty with `noDigest`: format v2 hashes whole packs, not frames).
   */
  compress(
    data: Uint8Array,
    into: Uint8Array | undefined,
    noDigest?: boolean,
  ): Promise<{ output: Uint8Array; digest: string }>;
  /** Slots for compressed frames (worker path only): one per frame waiting for its upload. */
  outSlots: SlotPool | undefined;
}

/**
 * The outputs of `o.dir` as FastCDC chunks in stream order, cut on the calling thread for small
 * outputs, else by the pack worker with the codec workers compressing.
 */
export async function chunkSource(
  o: SaveSettings,
  params: ChunkParams,
  inner: AbortSignal,
  signal: AbortSignal | undefined,
): Promise<ChunkSource> {
  const zstd = getZstdCodec(o.codec);
  const codec = zstd.name;
  const small = smallOutputs(o);
  if (small !== undefined) {
    // NOTE: the codec worker's own compression (compressFrameSync with node:zlib, the same
    // zstd-codec build otherwise): the frames are the worker path's, byte for byte.
    return {
      job: packInline(o, params, small, inner, signal),
      compress: async (data, _into, noDigest) => {
        const output =
          codec === 'node' ? compressFrameSync(data, o.level) : await zstd.compress(data, o.level);
        return {
          output,
          digest: noDigest ? '' : `sha256:${createHash('sha256').update(output).digest('hex')}`,
        };
      },
      outSlots: undefined,
    };
  }
  const [{ codecPool }, { packChunks }, { createSlotPool }] = await Promise.all([
    import('../workers/codec-pool.js'),
    import('../workers/pack.js'),
    import('../workers/slots.js'),
  ]);
  const pool = codecPool();
  // Compressed chunks wait for their upload in reused shared-memory slots (the codec worker
  // writes each frame straight into one): no per-chunk buffer crosses threads or becomes garbage.
  const outSlots = createSlotPool(o.concurrency, compressBound(params.maxSize));
  const job = packChunks({
    dir: o.dir,
    generates: o.generates,
    keepMtimes: o.keepMtimes,
    chunking: params,
    // NOTE: chunks being hashed by the codec workers hold their slots too, and each chunk makes
    // several hops between threads: 8 slots (up to 32 MiB at 4 MiB chunks) let the pack worker
    // cut ahead. Measured on a 1 GB warm save (Node 24): 4 slots 2.2 s with hashing on the pack
    // worker; with hashing here 6 slots 1.9–2.0 s, 8 slots 1.75–2.1 s, 10 slots 1.7 s (2 GB save
    // peak RSS 279 MB: too close to the 300 MB bound), 16 slots 1.5–1.6 s.
    slots: pool.size + 6,
    signal: inner,
    digest: (data) => pool.digest(data),
  });
  return {
    job,
    compress: (data, into, noDigest) => pool.compress(codec, data, o.level, into, noDigest),
    outSlots,
  };
}

/**
 * The outputs of `o.dir` when they are small enough for the calling thread (fewer than
 * `inlineBelow` bytes of files and `inlineFilesBelow` entries), else `undefined`. A listing that
 * fails leaves the decision to the worker path, which reports the error as it always did.
 */
function smallOutputs(o: SaveSettings): PackOutput[] | undefined {
  if (o.inlineBelow === 0 || o.inlineFilesBelow === 0) return undefined;
  try {
    return listSmallOutputsSync(o.dir, o.generates, o.inlineBelow, o.inlineFilesBelow);
  } catch {
    return undefined;
  }
}

/**
 * Packs the small `outputs` on the calling thread with the pack worker's code; the chunks are
 * copies (the outputs are below `inlineBelow` bytes, so memory stays bounded by it).
 */
function packInline(
  o: SaveSettings,
  params: ChunkParams,
  outputs: PackOutput[],
  inner: AbortSignal,
  signal: AbortSignal | undefined,
): PackJob {
  const stats = { files: 0, entries: 0, size: 0 };
  async function* chunks(): AsyncGenerator<PackedChunk> {
    const packed: PackedChunk[] = [];
    try {
      Object.assign(
        stats,
        packSync(
          { dir: o.dir, generates: o.generates, keepMtimes: o.keepMtimes, chunking: params, outputs },
          (
            data,
            digest, // NOTE: a copy (`data` is a view of the window, reused); not `slice`, a view for a Buffer.
          ) => packed.push({ data: new Uint8Array(data), digest, release: () => {} }),
          () => inner.aborted,
        ),
      );
    } catch (err) {
      const failure = failureOf(err);
      if (failure.kind === 'aborted' && signal?.aborted) throw signal.reason;
      throw failureToError(failure);
    }
    yield* packed;
  }
  return { chunks: chunks(), stats, abort: () => {} };
}
