/**
 * The FastCDC 2020 parameters core uses (REAPI's), as recorded in an entry's config; the pack
 * worker cuts with `@task-cache/chunker` using them.
 */

/** FastCDC 2020 parameters, as recorded in an entry's config. */
export interface ChunkParams {
  avgSize: number;
  minSize: number;
  maxSize: number;
  normalization: number;
  seed: number;
}

/** The parameters for an average size (min/max = avg/4, avg*4; normalization 2; seed 0). */
export function chunkParams(avgSize: number): ChunkParams {
  return { avgSize, minSize: avgSize / 4, maxSize: avgSize * 4, normalization: 2, seed: 0 };
}
