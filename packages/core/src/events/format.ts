import { describeExplanation } from '../explain/diff.js';
import type { CacheEvent } from './types.js';

const UNITS = ['kB', 'MB', 'GB'] as const;

/**
 * Formats a byte count in SI units (1 kB = 1000 B) with one decimal: `999 B`, `1.0 kB`,
 * `13.5 MB`, `2.1 GB`. Counts below 1000 are whole bytes and printed without a decimal;
 * counts of 1000 GB and more stay in GB.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0)
    throw new RangeError(`formatBytes: expected a byte count >= 0, got ${bytes}`);
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit: (typeof UNITS)[number] = 'kB';
  for (const u of UNITS) {
    value /= 1000;
    unit = u;
    // NOTE: round first, so 999 950 B prints as `1.0 MB`, not `1000.0 kB`.
    if (Math.round(value * 10) / 10 < 1000) break;
  }
  return `${value.toFixed(1)} ${unit}`;
}

/**
 * The line a build tool prints for an event, in the operator guide's words, or `undefined` for
 * events that have no line (lookup, hit, a miss without an explanation, progress, lock-acquired):
 *
 * - saved: `task: "build" saved to cache (pushed 42/42 chunks, 13.5 MB)` (size = compressed bytes uploaded)
 * - restored: `task: "build" restored from cache`
 * - up-to-date: `task: "build" up to date (cache)`
 * - lock-waiting: `task: "build" waiting for the cache lock`
 * - lock-peer-finished: `task: "build" built by another job, restoring`
 * - lock-unavailable: `task: "build" cache lock unavailable, building without it (<message>)`
 * - format-fallback: `task: "build" cache note: registry.example.com refused the standard entry form (MANIFEST_INVALID); saved in the compatible form, which this registry gets from now on`
 * - warning: `task: "build" cache warning: <message>`
 * - miss with an explanation (`policy.explain`): `task: "build" cache miss: src/app.ts changed, NODE_ENV changed (2 more)`
 * - read-only: `task: "build" cache is read-only: <reason>`
 */
export function formatEvent(event: CacheEvent): string | undefined {
  const task = JSON.stringify(event.task);
  switch (event.type) {
    case 'saved':
      return `task: ${task} saved to cache (pushed ${event.chunksPushed}/${event.chunksTotal} chunks, ${formatBytes(event.bytesPushed)})`;
    case 'restored':
      return `task: ${task} restored from cache`;
    case 'up-to-date':
      return `task: ${task} up to date (cache)`;
    case 'lock-waiting':
      return `task: ${task} waiting for the cache lock`;
    case 'lock-peer-finished':
      return `task: ${task} built by another job, restoring`;
    case 'lock-unavailable':
      return `task: ${task} cache lock unavailable, building without it (${event.message})`;
    case 'format-fallback':
      return `task: ${task} cache note: ${event.registry} refused the standard entry form (${event.code}); saved in the compatible form, which this registry gets from now on`;
    case 'warning':
      return `task: ${task} cache warning: ${event.message}`;
    case 'miss':
      return event.explanation
        ? `task: ${task} cache miss: ${describeExplanation(event.explanation)}`
        : undefined;
    case 'read-only':
      return `task: ${task} cache is read-only: ${event.reason}`;
    default:
      return undefined;
  }
}
