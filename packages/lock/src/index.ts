/**
 * `@task-cache/lock`: lease locks with fencing tokens and release notices — the lock types and the
 * engine, the in-process lock, the lock-file lock and the lock-file primitive, `withLock`, the lock-URL
 * parser, Redis error classification and the errors. Nothing here loads ioredis; the Redis backend is
 * the `@task-cache/lock/redis` subpath.
 */
export {
  LeaseLostError,
  type LeaseLostReason,
  LockConfigError,
  type LockConfigReason,
  LockError,
  type LockErrorCode,
  LockTimeoutError,
  LockUnavailableError,
  type LockUnavailableReason,
} from './errors.js';
export { createFileLock, type FileLockOptions } from './file-lock.js';
export { createLocalLock, type LocalLockOptions } from './local-lock.js';
export { type AcquireLockFileOptions, acquireLockFile, type HeldLockFile } from './lock-file.js';
export {
  classifyRedisFailure,
  isTlsFailure,
  type RedisFailureKind,
  redisReplyCode,
} from './redis-errors.js';
export type {
  AcquireOptions,
  AcquireOutcome,
  BackoffOptions,
  Lease,
  Lock,
  LockAcquirer,
  LockOptions,
  ReleaseOutcome,
} from './types.js';
export {
  describeLockUrl,
  type LocalLockUrl,
  type LockUrl,
  type LockUrlHost,
  parseLockUrl,
  type RedisClusterLockUrl,
  type RedisLockUrl,
  type RedisSentinelLockUrl,
  type RedisStandaloneLockUrl,
} from './url.js';
export { type WithLockResult, withLock } from './with-lock.js';
