/**
 * Building blocks the package's own benchmarks drive directly (bench/child.mjs runs the compiled,
 * bundled package as users do). Not public API: absent from `exports`, may change in any release.
 * @internal
 */
export { chunkParams } from './internal/chunk.js';
export { hasNodeZstd } from './internal/zstd.js';
export { codecPool } from './workers/codec-pool.js';
export { packChunks } from './workers/pack.js';
