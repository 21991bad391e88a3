export {
  LeaseLostError,
  type LeaseLostReason,
  LockConfigError,
  type LockConfigReason,
  LockError,
  type LockErrorCode,
  LockUnavailableError,
  type LockUnavailableReason,
} from './errors.js';
export { createFileLock, type FileLockOptions } from './file-lock.js';
export { createLocalLock, type LocalLockOptions } from './local-lock.js';
export { connectLock, createRedisLock, type RedisLockOptions } from './redis-lock.js';
export type {
  AcquireOptions,
  AcquireOutcome,
  BackoffOptions,
  Lease,
  Lock,
  LockOptions,
  ReleaseOutcome,
} from './types.js';
export { type LockUrl, parseLockUrl } from './url.js';
export { type WithLockResult, withLock } from './with-lock.js';
