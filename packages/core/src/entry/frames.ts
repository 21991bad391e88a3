/**
 * Where each chunk's compressed bytes are, for both format versions (docs/format.md §8, §11.3):
 * a frame is a byte range of a layer (in version 1 the whole layer); a run is a sequence of
 * frames adjacent in one layer, fetched with one request (a `Range` unless it is the whole layer).
 */
import type { Descriptor } from '@task-cache/oci';
import { EntryCorruptError } from '../errors.js';
import { type ChunkRef, compressBound } from './format.js';

/** Compressed bytes at which a run is cut, so that several runs download at once. */
export const RUN_BYTES = 8 * 1024 * 1024;

/** One chunk's zstd frame. */
export interface Frame {
  /** Position of the chunk in the stream. */
  index: number;
  layer: Readonly<Descriptor>;
  offset: number;
  length: number;
  /** Uncompressed size and sha256 (from the verified config). */
  size: number;
  digest: string;
}

/** Frames adjacent in one layer, fetched with one request. */
export interface Run {
  layer: Readonly<Descriptor>;
  offset: number;
  length: number;
  frames: Frame[];
}

/**
 * The frames of an entry's chunks in stream order. The config was validated against the layers
 * (`parseConfig`): in version 2 every frame lies inside its layer; in version 1 chunk `i` is the
 * whole layer `i`, which must not be larger than zstd's bound for the chunk.
 * @throws {EntryCorruptError} for a version 1 layer too large for its chunk.
 */
export function framesOf(chunks: readonly ChunkRef[], layers: readonly Readonly<Descriptor>[]): Frame[] {
  return chunks.map((c, index) => {
    if (c.layer !== undefined && c.offset !== undefined && c.length !== undefined) {
      return {
        index,
        layer: layers[c.layer] as Descriptor,
        offset: c.offset,
        length: c.length,
        size: c.size,
        digest: c.digest,
      };
    }
    const layer = layers[index] as Descriptor;
    if (layer.size > compressBound(c.size)) {
      throw new EntryCorruptError(
        `chunk ${index} is ${layer.size} bytes compressed, too large for ${c.size} bytes of data`,
        { digest: layer.digest },
      );
    }
    return { index, layer, offset: 0, length: layer.size, size: c.size, digest: c.digest };
  });
}

/**
 * Groups consecutive frames of one layer whose bytes are adjacent into runs of at most `maxBytes`
 * compressed bytes (a frame larger than that is a run of its own).
 */
export function runsOf(frames: readonly Frame[], maxBytes = RUN_BYTES): Run[] {
  const runs: Run[] = [];
  let run: Run | undefined;
  for (const f of frames) {
    if (
      run !== undefined &&
      run.layer.digest === f.layer.digest &&
      f.offset === run.offset + run.length &&
      run.length + f.length <= maxBytes
    ) {
      run.frames.push(f);
      run.length += f.length;
      continue;
    }
    run = { layer: f.layer, offset: f.offset, length: f.length, frames: [f] };
    runs.push(run);
  }
  return runs;
}

/** Largest run of `runs` in compressed bytes (at least 1). */
export function largestRun(runs: readonly Run[]): number {
  let n = 1;
  for (const r of runs) n = Math.max(n, r.length);
  return n;
}

/** The store reading of {@link fetchRun}. */
export interface RunReader {
  fetchBlob(
    descriptor: Descriptor,
    options?: {
      signal?: AbortSignal;
      contentVerified?: boolean;
      range?: { offset: number; length: number };
    },
  ): Promise<AsyncIterable<Uint8Array>>;
}

/**
 * Reads the run's bytes into `into` (at least `run.length` bytes) and returns a view of them: the
 * whole layer, or a `Range` of it. One hash per byte: the store checks only the length; each frame's
 * uncompressed sha256 from the config proves the content (docs/format.md §8.1).
 * @throws {EntryCorruptError} when the store hands back more bytes than asked.
 */
export async function fetchRun(
  store: RunReader,
  run: Run,
  into: Uint8Array,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const whole = run.offset === 0 && run.length === run.layer.size;
  const options = whole
    ? { signal, contentVerified: true }
    : { signal, contentVerified: true, range: { offset: run.offset, length: run.length } };
  let pos = 0;
  for await (const p of await store.fetchBlob(run.layer as Descriptor, options)) {
    if (pos + p.byteLength > run.length) {
      throw new EntryCorruptError(`layer ${run.layer.digest} is longer than the entry says`, {
        digest: run.layer.digest,
      });
    }
    into.set(p, pos);
    pos += p.byteLength;
  }
  signal.throwIfAborted();
  if (pos !== run.length) {
    throw new EntryCorruptError(`layer ${run.layer.digest} ended after ${pos} of ${run.length} bytes`, {
      digest: run.layer.digest,
    });
  }
  return into.subarray(0, pos);
}
