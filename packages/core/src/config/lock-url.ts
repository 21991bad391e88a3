import { LockConfigError, type LockUrl, parseLockUrl } from '@task-cache/lock';
import { CacheConfigError } from './errors.js';

// NOTE: the lock-URL grammar belongs to @task-cache/lock; core re-exports its very parser and type.
export { type LockUrl, parseLockUrl };

/**
 * `createCache`'s `lock` option as a parsed lock URL. A malformed one is a {@link CacheConfigError}
 * (`CACHE_ERR_INVALID_URL`) naming the option, with the lock package's `LockConfigError` as its `cause`.
 */
export function parseLockOption(value: string, where: string): LockUrl {
  try {
    return parseLockUrl(value);
  } catch (error) {
    if (!(error instanceof LockConfigError)) throw error;
    throw new CacheConfigError('CACHE_ERR_INVALID_URL', `${where}: \`lock\`: ${error.message}`, {
      cause: error,
    });
  }
}
