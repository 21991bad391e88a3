/**
 * The bounds of the local store (`maxSize`, `maxAge`, `pruneIntervalMs`): options, their
 * environment variables (`TASK_CACHE_MAX_SIZE`, `TASK_CACHE_MAX_AGE`) and defaults.
 */
import { InvalidOptionError } from '../errors.js';
import { checkSize } from '../internal/validate.js';

// NOTE: the defaults suit a laptop. 5 GiB is ccache's `max_size` default: a few hundred entries
// of a typical build's outputs, small next to today's disks, large enough that a day's work on
// several branches stays cached. 14 days keeps what a developer used before a week away (GitHub's
// cache evicts after 7 days unused; a laptop is idle more often than CI).
/** Default `maxSize`: 5 GiB. */
export const DEFAULT_MAX_SIZE = 5 * 1024 ** 3;
/** Default `maxAge`: 14 days. */
export const DEFAULT_MAX_AGE_MS = 14 * 86_400_000;
/** Default `pruneIntervalMs`: 10 minutes (a prune reads every manifest of the layout). */
export const DEFAULT_PRUNE_INTERVAL_MS = 600_000;

/** The resolved bounds of a cache's local store. */
export interface LocalBounds {
  maxSize: number;
  maxAgeMs: number;
  pruneIntervalMs: number;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};
const AGE_UNITS: Record<string, number> = {
  '': 1,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

function parseWithUnit(field: string, text: string, units: Record<string, number>, example: string): number {
  const t = text.trim().toLowerCase();
  if (t === 'off' || t === 'infinity') return Number.POSITIVE_INFINITY;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(t);
  const unit = m ? units[m[2]!] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidOptionError(
      field,
      `must be a number with an optional unit (e.g. ${example}) or "off", got ${JSON.stringify(text)}`,
    );
  }
  return Math.round(Number(m[1]) * unit);
}

/** Parses a size such as `5GB`, `512MiB`, `1048576` (binary units) or `off`. */
export function parseSize(text: string, field = 'maxSize'): number {
  return parseWithUnit(field, text, SIZE_UNITS, '"5GB", "512MiB"');
}

/** Parses a duration such as `14d`, `12h`, `90m`, `3600000` (ms) or `off`. */
export function parseDuration(text: string, field = 'maxAge'): number {
  return parseWithUnit(field, text, AGE_UNITS, '"14d", "12h"');
}

/**
 * The bounds from the options, else the environment, else the defaults. `Infinity` (or `off` in
 * the environment) lifts a bound.
 */
export function resolveBounds(
  o: { maxSize?: unknown; maxAge?: unknown; pruneIntervalMs?: unknown },
  env: Record<string, string | undefined>,
): LocalBounds {
  const fromEnv = (name: string, parse: (t: string, f: string) => number, def: number) => {
    const v = env[name];
    return v === undefined || v === '' ? def : parse(v, name);
  };
  return {
    maxSize: checkSize('maxSize', o.maxSize, fromEnv('TASK_CACHE_MAX_SIZE', parseSize, DEFAULT_MAX_SIZE)),
    maxAgeMs: checkSize('maxAge', o.maxAge, fromEnv('TASK_CACHE_MAX_AGE', parseDuration, DEFAULT_MAX_AGE_MS)),
    pruneIntervalMs: checkSize('pruneIntervalMs', o.pruneIntervalMs, DEFAULT_PRUNE_INTERVAL_MS),
  };
}
