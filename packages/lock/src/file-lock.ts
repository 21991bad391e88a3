import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LockConfigError } from './errors.js';
import { createEngineLock, type LockBackend } from './internal/engine.js';
import { lockFileIoError, refreshLockFile, releaseLockFile, tryLockFile } from './internal/lock-file.js';
import { createReleaseNotices } from './internal/notices.js';
import type { Lock, LockOptions } from './types.js';

/** Options of {@link createFileLock}. */
export type FileLockOptions = LockOptions;

// NOTE: one registry per process on purpose: release notices reach the waiters of every file lock of
// this process on the same lock file at once; other processes notice by polling.
const notices = createReleaseNotices();

function fileName(key: string): string {
  const readable = key.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  return `${readable}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

/**
 * A {@link Lock} for processes on one machine, backed by lock files in `dir` (created if missing).
 *
 * Each key is one lock file, taken with the algorithm of `acquireLockFile` (created atomically,
 * holding the owner's token, PID, host name and TTL); the holder touches its mtime every ttl/3. A lock is
 * stale, and is broken by the next acquirer, when its owner PID is gone (same host) or its mtime is older
 * than its TTL (a frozen or crashed holder, a reused PID). Fencing tokens come from `<key>.fence` files, written while holding the
 * lock (floor: the wall clock in µs). Release notices reach waiters in the same process immediately;
 * waiters in other processes poll with the usual backoff.
 */
export function createFileLock(dir: string, options: FileLockOptions = {}): Lock {
  if (typeof dir !== 'string' || dir === '') {
    throw new LockConfigError('option', 'createFileLock(dir): dir must be a non-empty path');
  }
  let ready: Promise<unknown> | undefined;
  const ensureDir = () => {
    ready ??= mkdir(dir, { recursive: true }).catch((error) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
  const paths = (key: string) => {
    const base = join(dir, fileName(key));
    return { lock: `${base}.lock`, fence: `${base}.fence` };
  };

  const nextFence = async (path: string): Promise<number> => {
    let last = 0;
    try {
      last = Number((await readFile(path, 'utf8')).trim()) || 0;
    } catch {
      // missing: the wall clock floor below still makes it grow
    }
    const fence = Math.max(last + 1, Date.now() * 1000);
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, String(fence));
    await rename(tmp, path);
    return fence;
  };

  const backend: LockBackend = {
    async tryAcquire(key, token, ttlMs) {
      const p = paths(key);
      try {
        await ensureDir();
      } catch (error) {
        throw lockFileIoError(error, dir);
      }
      const attempt = await tryLockFile(p.lock, token, ttlMs);
      if (!attempt.ok) return { ok: false, pttlMs: attempt.remainingMs };
      try {
        return { ok: true, fence: await nextFence(p.fence) };
      } catch (error) {
        // Without a fence the lease cannot be handed out: give the lock back at once.
        await releaseLockFile(p.lock, token).catch(() => false);
        throw lockFileIoError(error, p.fence);
      }
    },
    renew: (key, token) => refreshLockFile(paths(key).lock, token),
    async release(key, token, outcome) {
      const p = paths(key);
      let deleted = false;
      try {
        deleted = await releaseLockFile(p.lock, token);
      } finally {
        if (deleted || outcome === 'built') notices.publish(p.lock, outcome);
      }
      return deleted;
    },
    subscribe: async (key, listener) => notices.subscribe(paths(key).lock, listener),
    async close() {},
  };
  return createEngineLock(backend, options);
}
