/** Step 5: build — the caller's function, timed; its failure is the caller's own error, unchanged. */
import type { BuildFunction, RunStats } from '../types.js';

/** Runs `build` with the run's signal and key. */
export async function buildStep<T>(
  build: BuildFunction<T>,
  context: { signal: AbortSignal; key: string },
  stats: RunStats,
): Promise<T> {
  const t = performance.now();
  try {
    return await build(context);
  } finally {
    stats.buildMs += performance.now() - t;
  }
}
