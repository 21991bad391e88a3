import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LockConfigError, LockUnavailableError } from './errors.js';
import { createEngineLock, type LockBackend } from './internal/engine.js';
import type { Lock, LockOptions, ReleaseOutcome } from './types.js';

/** Options of {@link createFileLock}. */
export type FileLockOptions = LockOptions;

/** Contents of a lock file (JSON). */
interface LockFileContent {
  token: string;
  pid: number;
  host: string;
  ttlMs: number;
}

// Release notices reach waiters of the same process at once; other processes notice by polling.
const listeners = new Map<string, Set<(outcome: ReleaseOutcome) => void>>();

function fileName(key: string): string {
  const readable = key.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  return `${readable}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock file as read: gone, unreadable as ours (foreign or torn: stale), or a lock. `raw` identifies it. */
type ReadLock =
  | { kind: 'missing' }
  | { kind: 'invalid'; raw: string }
  | { kind: 'ok'; raw: string; content: LockFileContent };

async function readLock(path: string): Promise<ReadLock> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw error;
  }
  try {
    const parsed = JSON.parse(raw) as Partial<LockFileContent>;
    if (typeof parsed.token !== 'string') return { kind: 'invalid', raw };
    const content = {
      token: parsed.token,
      pid: Number(parsed.pid),
      host: String(parsed.host),
      ttlMs: Number(parsed.ttlMs),
    };
    return { kind: 'ok', raw, content };
  } catch {
    return { kind: 'invalid', raw };
  }
}

async function readToken(path: string): Promise<string | undefined> {
  const read = await readLock(path);
  return read.kind === 'ok' ? read.content.token : undefined;
}

const ioError = (error: unknown, dir: string) =>
  new LockUnavailableError('connection', `lock directory ${dir}: ${(error as Error).message}`, {
    cause: error,
  });

/**
 * A {@link Lock} for processes on one machine, backed by lock files in `dir` (created if missing).
 *
 * A lock file is created atomically (`link` of a fully written temp file) and holds the owner's token,
 * PID, host name and TTL; the holder touches its mtime every ttl/3. A lock is stale, and is broken by the
 * next acquirer, when its owner PID is gone (same host) or its mtime is older than its TTL (a frozen or
 * crashed holder, a reused PID). Fencing tokens come from `<key>.fence` files, written while holding the
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
  const host = hostname();

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

  /** Moves the stale lock file aside, but only if it is still the very file judged stale (`raw`). */
  const tryBreakStale = async (lockPath: string, raw: string): Promise<void> => {
    const aside = `${lockPath}.${randomBytes(6).toString('hex')}.stale`;
    try {
      await rename(lockPath, aside);
    } catch {
      return; // someone else broke it first
    }
    const moved = await readFile(aside, 'utf8').catch(() => undefined);
    if (moved === raw) {
      await unlink(aside).catch(() => undefined);
      return;
    }
    // NOTE: between our read and our rename another process replaced the stale file with a fresh lock:
    // put it back (link fails if yet another one appeared; that holder then wins and the displaced one
    // notices on its next renewal).
    await link(aside, lockPath).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
  };

  const backend: LockBackend = {
    async tryAcquire(key, token, ttlMs) {
      const p = paths(key);
      try {
        await ensureDir();
        const content: LockFileContent = { token, pid: process.pid, host, ttlMs };
        const tmp = `${p.lock}.${token}.tmp`;
        await writeFile(tmp, JSON.stringify(content));
        try {
          for (let round = 0; round < 2; round++) {
            try {
              await link(tmp, p.lock);
              return { ok: true, fence: await nextFence(p.fence) };
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
            }
            const existing = await readLock(p.lock);
            if (existing.kind === 'missing') continue; // released meanwhile: try again
            let mtime: number;
            try {
              mtime = (await stat(p.lock)).mtimeMs;
            } catch {
              continue; // released meanwhile: try again
            }
            const age = Date.now() - mtime;
            const owner = existing.kind === 'ok' ? existing.content : undefined;
            const ttl = owner && Number.isFinite(owner.ttlMs) ? owner.ttlMs : ttlMs;
            const ownerGone = owner !== undefined && owner.host === host && !pidAlive(owner.pid);
            if (round === 0 && (ownerGone || age > ttl || owner === undefined)) {
              await tryBreakStale(p.lock, existing.raw);
              continue;
            }
            return { ok: false, pttlMs: Math.max(0, Math.ceil(ttl - age)) };
          }
          return { ok: false, pttlMs: undefined };
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      } catch (error) {
        throw ioError(error, dir);
      }
    },
    async renew(key, token) {
      const p = paths(key);
      try {
        if ((await readToken(p.lock)) !== token) return false;
        const t = new Date();
        await utimes(p.lock, t, t);
        return true;
      } catch (error) {
        throw ioError(error, dir);
      }
    },
    async release(key, token, outcome) {
      const p = paths(key);
      let deleted = false;
      try {
        if ((await readToken(p.lock)) === token) {
          await unlink(p.lock);
          deleted = true;
        }
      } finally {
        if (deleted || outcome === 'built') {
          for (const l of [...(listeners.get(p.lock) ?? [])]) l(outcome);
        }
      }
      return deleted;
    },
    async subscribe(key, listener) {
      const id = paths(key).lock;
      let set = listeners.get(id);
      if (!set) {
        set = new Set();
        listeners.set(id, set);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(id);
      };
    },
    async close() {},
  };
  return createEngineLock(backend, options);
}
