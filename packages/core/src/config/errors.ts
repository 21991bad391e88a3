import { TaskCacheError } from '../errors.js';

/** Codes of {@link CacheConfigError}. */
export type CacheConfigErrorCode = 'INVALID_KEY' | 'INVALID_URL' | 'INVALID_OPTION' | 'MISSING_DEPENDENCY';

/**
 * A configuration mistake, raised when the cache is configured (before any network call): an
 * invalid key or tag, an unparsable store or lock URL, a bad option. The message names the
 * problem and the remedy; it never contains a password.
 */
export class CacheConfigError extends TaskCacheError {
  override name = 'CacheConfigError';
  declare readonly code: CacheConfigErrorCode;
  constructor(code: CacheConfigErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** Codes of {@link CacheRunError}. */
export type CacheRunErrorCode = 'CACHE_FAILED';

/**
 * Strict mode only: cache trouble (store unreachable, 401, lost lease, corrupt entry, lock
 * unavailable) rejects the run with this error; `reason` is the warning code it would have been,
 * `cause` the underlying error.
 */
export class CacheRunError extends TaskCacheError {
  override name = 'CacheRunError';
  declare readonly code: CacheRunErrorCode;
  /** The warning code this would have been outside strict mode. */
  readonly reason: string;
  constructor(reason: string, message: string, options: { cause?: unknown } = {}) {
    super('CACHE_FAILED', message, options);
    this.reason = reason;
  }
}
