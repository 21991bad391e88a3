import { randomBytes } from 'node:crypto';
import { LockConfigError, LockTimeoutError } from './errors.js';
import { type LockFileOwner, releaseLockFile, tryLockFile } from './internal/lock-file.js';
import { sleep } from './internal/sleep.js';

/** Options of {@link acquireLockFile}. */
export interface AcquireLockFileOptions {
  /** Give up with a {@link LockTimeoutError} after waiting this long for a live holder (0: one attempt). */
  timeoutMs: number;
  /**
   * How long the lock stays valid: a holder older than this (by the lock file's mtime) is considered
   * abandoned and its lock is broken. Hold the lock well below it. A dead holder on this host is detected
   * at once, whatever this says.
   * @default 10_000
   */
  staleMs?: number;
  /** Aborting rejects with `signal.reason` promptly. @default undefined */
  signal?: AbortSignal;
}

/** A lock file held by {@link acquireLockFile}. */
export interface HeldLockFile {
  /** Removes the lock file if it is still ours (never someone else's). Idempotent; never throws. */
  release(): Promise<void>;
}

const DEFAULT_STALE_MS = 10_000;
const FIRST_DELAY_MS = 2;
const MAX_DELAY_MS = 50;

const check = (value: unknown, field: string, min: number): number => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new LockConfigError(
      'option',
      `acquireLockFile: options.${field} must be a number >= ${min}, got ${String(value)}`,
    );
  }
  return value;
};

const describeOwner = (owner: LockFileOwner | undefined) =>
  owner ? `pid ${owner.pid} on ${owner.host}` : 'an unknown owner';

/**
 * Takes the cross-process lock file at `path` (its directory must exist), waiting with short, growing,
 * jittered delays (2 ms up to 50 ms) while a live holder has it. Meant for short critical sections such as
 * a read-modify-write of one file. The algorithm (atomic create, owner PID + host + token, stale on a dead
 * owner or after `staleMs`, safe breaking of a stale lock) is the one `createFileLock` leases use.
 *
 * @throws {LockTimeoutError} after `timeoutMs` of waiting, naming the holder.
 * @throws {LockConfigError} reason `'option'` for bad options.
 * @throws {LockUnavailableError} reason `'io'` when the lock file cannot be created or read.
 */
export async function acquireLockFile(path: string, options: AcquireLockFileOptions): Promise<HeldLockFile> {
  if (typeof path !== 'string' || path === '') {
    throw new LockConfigError('option', 'acquireLockFile: path must be a non-empty string');
  }
  if (typeof options !== 'object' || options === null) {
    throw new LockConfigError('option', 'acquireLockFile: options must be an object with timeoutMs');
  }
  const timeoutMs = check(options.timeoutMs, 'timeoutMs', 0);
  const staleMs = check(options.staleMs ?? DEFAULT_STALE_MS, 'staleMs', 1);
  const { signal } = options;
  const token = randomBytes(16).toString('hex');
  const deadline = performance.now() + timeoutMs;
  let delay = FIRST_DELAY_MS;
  for (;;) {
    signal?.throwIfAborted();
    const attempt = await tryLockFile(path, token, staleMs);
    if (attempt.ok) {
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          // NOTE: never throws: a lock we fail to remove is broken as stale after `staleMs`.
          await releaseLockFile(path, token).catch(() => false);
        },
      };
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      throw new LockTimeoutError(
        path,
        `timed out after ${timeoutMs} ms waiting for lock ${path} (held by ${describeOwner(attempt.owner)})`,
      );
    }
    let wait = delay / 2 + Math.random() * delay;
    if (attempt.remainingMs !== undefined) wait = Math.min(wait, attempt.remainingMs + 1);
    await sleep(Math.min(wait, remaining), signal);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}
