import { ChunkerOptionError } from './errors.js';
import { MASKS, MAX_MASK_BITS, MIN_MASK_BITS } from './internal/masks.js';

/** Options of {@link chunkBuffer} and {@link chunkStream}: the FastCDC 2020 parameters. */
export interface ChunkOptions {
  /**
   * Target (average) chunk size in bytes; a power of two such that log2(avgSize) ± normalization
   * stays within 5..25 (the mask table), i.e. 128 B to 8 MiB at normalization 2.
   * @default 1048576 (1 MiB)
   */
  avgSize?: number;
  /**
   * Minimum chunk size in bytes (only the last chunk may be smaller); at least 64, below `maxSize`,
   * at most `avgSize`.
   * @default avgSize / 4
   */
  minSize?: number;
  /**
   * Maximum chunk size in bytes; above `minSize`, at least `avgSize`. It need not be a power of two
   * (the REAPI test vectors use 65535).
   * @default avgSize * 4
   */
  maxSize?: number;
  /**
   * Normalized-chunking level, 0 to 3: the mask below `avgSize` is `normalization` bits harder and the
   * one above it `normalization` bits easier, which narrows the chunk-size distribution.
   * @default 2
   */
  normalization?: number;
  /**
   * Gear seed: a non-zero seed XORs every GEAR entry with `seed` (and GEAR_SHIFTED with `seed << 1`),
   * so chunk boundaries cannot be predicted without it. An unsigned 64-bit value.
   * @default 0
   */
  seed?: bigint | number;
  /** Aborts the chunking; the call then throws `signal.reason`. */
  signal?: AbortSignal;
}

/** Validated, resolved parameters (internal). */
export interface ResolvedParams {
  readonly avgSize: number;
  readonly minSize: number;
  readonly maxSize: number;
  readonly normalization: number;
  readonly seed: bigint;
  /** Mask used below avgSize (masks[log2(avg) + level]). */
  readonly maskSmall: bigint;
  /** Mask used from avgSize on (masks[log2(avg) - level]). */
  readonly maskLarge: bigint;
}

/** Default `avgSize`: 1 MiB. */
export const DEFAULT_AVG_SIZE = 1024 * 1024;
/** Default `normalization` level. */
export const DEFAULT_NORMALIZATION = 2;
/** Smallest allowed `minSize`. */
export const MIN_MIN_SIZE = 64;
const U64_MAX = (1n << 64n) - 1n;

function checkSize(name: 'avgSize' | 'minSize' | 'maxSize', value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new ChunkerOptionError(name, `${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** Validates the options and derives the masks; throws {@link ChunkerOptionError} naming the option. */
export function resolveOptions(options: ChunkOptions = {}): ResolvedParams {
  if (options === null || typeof options !== 'object') {
    throw new ChunkerOptionError('avgSize', `options must be an object, got ${String(options)}`);
  }
  const avgSize = checkSize('avgSize', options.avgSize ?? DEFAULT_AVG_SIZE);
  const level = options.normalization ?? DEFAULT_NORMALIZATION;
  if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > 3) {
    throw new ChunkerOptionError(
      'normalization',
      `normalization must be an integer from 0 to 3, got ${String(level)}`,
    );
  }
  if ((avgSize & (avgSize - 1)) !== 0 || avgSize > 2 ** 30) {
    throw new ChunkerOptionError('avgSize', `avgSize must be a power of two, got ${avgSize}`);
  }
  const bits = Math.log2(avgSize);
  if (bits - level < MIN_MASK_BITS || bits + level > MAX_MASK_BITS) {
    const lo = 2 ** (MIN_MASK_BITS + level);
    const hi = 2 ** (MAX_MASK_BITS - level);
    throw new ChunkerOptionError(
      'avgSize',
      `avgSize must be from ${lo} to ${hi} at normalization ${level} (log2(avgSize) ± normalization ` +
        `must stay within ${MIN_MASK_BITS}..${MAX_MASK_BITS}), got ${avgSize}`,
    );
  }
  const minSize = checkSize('minSize', options.minSize ?? avgSize / 4);
  const maxSize = checkSize('maxSize', options.maxSize ?? avgSize * 4);
  if (minSize < MIN_MIN_SIZE) {
    throw new ChunkerOptionError('minSize', `minSize must be at least ${MIN_MIN_SIZE}, got ${minSize}`);
  }
  if (minSize >= maxSize) {
    throw new ChunkerOptionError(
      'minSize',
      `minSize must be below maxSize, got minSize ${minSize} and maxSize ${maxSize}`,
    );
  }
  if (avgSize < minSize) {
    throw new ChunkerOptionError(
      'avgSize',
      `avgSize must be within [minSize, maxSize], got avgSize ${avgSize} below minSize ${minSize}`,
    );
  }
  if (avgSize > maxSize) {
    throw new ChunkerOptionError(
      'avgSize',
      `avgSize must be within [minSize, maxSize], got avgSize ${avgSize} above maxSize ${maxSize}`,
    );
  }
  const rawSeed = options.seed ?? 0n;
  let seed: bigint;
  if (typeof rawSeed === 'bigint') {
    seed = rawSeed;
  } else if (typeof rawSeed === 'number' && Number.isSafeInteger(rawSeed)) {
    seed = BigInt(rawSeed);
  } else {
    throw new ChunkerOptionError('seed', `seed must be a bigint or a safe integer, got ${String(rawSeed)}`);
  }
  if (seed < 0n || seed > U64_MAX) {
    throw new ChunkerOptionError('seed', `seed must be an unsigned 64-bit integer, got ${seed}`);
  }
  return {
    avgSize,
    minSize,
    maxSize,
    normalization: level,
    seed,
    maskSmall: MASKS.get(bits + level)!,
    maskLarge: MASKS.get(bits - level)!,
  };
}
