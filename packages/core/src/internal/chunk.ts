/**
 * The one place core meets `@task-cache/chunker` (FastCDC 2020, REAPI parameters).
 */
import { chunkStream } from '@task-cache/chunker';

/** FastCDC 2020 parameters, as recorded in an entry's config. */
export interface ChunkParams {
  avgSize: number;
  minSize: number;
  maxSize: number;
  normalization: number;
  seed: number;
}

/** One chunk of the stream, with its bytes. */
export interface Chunk {
  offset: number;
  length: number;
  data: Uint8Array;
}

/** The parameters for an average size (min/max = avg/4, avg*4; normalization 2; seed 0). */
export function chunkParams(avgSize: number): ChunkParams {
  return { avgSize, minSize: avgSize / 4, maxSize: avgSize * 4, normalization: 2, seed: 0 };
}

/**
 * Cuts `source` into content-defined chunks, in order. An empty source gives one empty chunk, so
 * every entry has at least one layer.
 */
export async function* chunk(
  source: AsyncIterable<Uint8Array>,
  params: ChunkParams,
  signal?: AbortSignal,
): AsyncGenerator<Chunk> {
  let any = false;
  // NOTE: the tar stream hands out fresh buffers (it never reuses them), so the chunker's views
  // stay valid while later chunks are cut; no copy needed.
  for await (const c of chunkStream(source, { ...params, signal })) {
    any = true;
    yield { offset: c.offset, length: c.length, data: c.data ?? new Uint8Array(0) };
  }
  if (!any) yield { offset: 0, length: 0, data: new Uint8Array(0) };
}
