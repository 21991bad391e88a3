import { LockConfigError } from '../errors.js';

/**
 * Loads the optional peer dependency ioredis through `importer` (`() => import('ioredis')`), turning a
 * failure into a {@link LockConfigError} (reason `'dependency'`) that names the fix instead of a raw
 * `ERR_MODULE_NOT_FOUND`.
 */
export async function loadIoredis<T>(importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (cause) {
    const missing = (cause as { code?: unknown } | null)?.code === 'ERR_MODULE_NOT_FOUND';
    throw new LockConfigError(
      'dependency',
      missing
        ? 'redis:// and rediss:// locks (@task-cache/lock/redis) need the optional peer dependency ioredis, which is not installed: npm i ioredis'
        : 'redis:// and rediss:// locks (@task-cache/lock/redis) could not load ioredis; reinstall it: npm i ioredis',
      { cause },
    );
  }
}
