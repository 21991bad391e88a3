/**
 * The one place core meets the chunker. NOTE: a temporary fixed-size splitter stands in for
 * `@task-cache/chunker`'s FastCDC `chunkStream` until that package lands; swap the body of
 * {@link chunk} for `chunkStream(source, params)` then (same shape).
 */

/** FastCDC 2020 parameters, as recorded in an entry's config. */
export interface ChunkParams {
  avgSize: number;
  minSize: number;
  maxSize: number;
  normalization: number;
  seed: number;
}

/** One chunk of the stream; `data` is owned by the caller (never reused by the chunker). */
export interface Chunk {
  offset: number;
  length: number;
  data: Uint8Array;
}

/** The parameters for an average size (min/max = avg/4, avg*4; normalization 2; seed 0). */
export function chunkParams(avgSize: number): ChunkParams {
  return { avgSize, minSize: avgSize / 4, maxSize: avgSize * 4, normalization: 2, seed: 0 };
}

/** Cuts `source` into chunks of at most `params.maxSize` bytes, in order. */
export async function* chunk(
  source: AsyncIterable<Uint8Array>,
  params: ChunkParams,
  signal?: AbortSignal,
): AsyncGenerator<Chunk> {
  const size = params.avgSize;
  let buf = Buffer.allocUnsafe(size);
  let fill = 0;
  let offset = 0;
  for await (const piece of source) {
    signal?.throwIfAborted();
    let pos = 0;
    while (pos < piece.byteLength) {
      const n = Math.min(size - fill, piece.byteLength - pos);
      buf.set(piece.subarray(pos, pos + n), fill);
      fill += n;
      pos += n;
      if (fill === size) {
        yield { offset, length: fill, data: buf };
        offset += fill;
        buf = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0 || offset === 0) yield { offset, length: fill, data: buf.subarray(0, fill) };
}
