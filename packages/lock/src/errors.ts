/** Literal codes of the {@link LockError} family. */
export type LockErrorCode = 'LOCK_CONFIG' | 'LOCK_UNAVAILABLE' | 'LEASE_LOST';

/**
 * Base class of every error thrown by `@task-cache/lock`. Messages never contain a password.
 */
export class LockError extends Error {
  override name = 'LockError';
  /** Literal error code. */
  readonly code: LockErrorCode;

  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Why a {@link LockConfigError} was raised. */
export type LockConfigReason = 'url' | 'auth' | 'permission' | 'tls' | 'option';

/**
 * Misconfiguration: a bad lock URL or option, `NOAUTH` / `WRONGPASS`, `NOPERM` (an ACL user without
 * permission on the lock keys), or `rediss://` pointed at a plaintext port. Retrying will not help.
 */
export class LockConfigError extends LockError {
  override name = 'LockConfigError';
  /** What is misconfigured. */
  readonly reason: LockConfigReason;

  constructor(reason: LockConfigReason, message: string, options?: { cause?: unknown }) {
    super('LOCK_CONFIG', message, options);
    this.reason = reason;
  }
}

/** Why a {@link LockUnavailableError} was raised. */
export type LockUnavailableReason = 'connection' | 'timeout' | 'oom' | 'readonly';

/**
 * The lock backend cannot serve the request right now (unreachable, command timeout, `OOM` under
 * `noeviction`, a `READONLY` replica). Callers normally proceed without the lock.
 */
export class LockUnavailableError extends LockError {
  override name = 'LockUnavailableError';
  /** What went wrong. */
  readonly reason: LockUnavailableReason;

  constructor(reason: LockUnavailableReason, message: string, options?: { cause?: unknown }) {
    super('LOCK_UNAVAILABLE', message, options);
    this.reason = reason;
  }
}

/** Why a lease was lost. */
export type LeaseLostReason = 'expired' | 'stolen' | 'closed';

/**
 * The reason a lease's `signal` aborts with: the lease `expired` (renewals failed until the local
 * monotonic deadline passed), was `stolen` (the key no longer holds this lease's token, e.g. after a
 * Redis restart or a takeover after expiry), or the lock was `closed` while the lease was held.
 */
export class LeaseLostError extends LockError {
  override name = 'LeaseLostError';
  /** Why the lease was lost. */
  readonly reason: LeaseLostReason;
  /** The lock key. */
  readonly key: string;
  /** The fencing token of the lost lease. */
  readonly fence: number;

  constructor(reason: LeaseLostReason, key: string, fence: number, options?: { cause?: unknown }) {
    super('LEASE_LOST', `lease on lock key "${key}" (fence ${fence}) lost: ${describeLost(reason)}`, options);
    this.reason = reason;
    this.key = key;
    this.fence = fence;
  }
}

function describeLost(reason: LeaseLostReason): string {
  switch (reason) {
    case 'expired':
      return 'it could not be renewed before its TTL ran out';
    case 'stolen':
      return 'the lock key no longer holds this lease (expired and taken over, or the backend restarted)';
    case 'closed':
      return 'the lock was closed';
  }
}
