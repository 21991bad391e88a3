/**
 * A small cross-process lock file for the image layout's `index.json`.
 *
 * The lock is a file created with `O_CREAT | O_EXCL` (atomic on local filesystems) holding
 * the owner's PID, host name and a random token. A lock is stale when its owner is a dead
 * process on this host, or when it is older than `staleMs` (an owner on another host of a
 * shared filesystem, or a frozen process). The lock is only ever held for one
 * read-modify-write of `index.json`, i.e. milliseconds, so a generous `staleMs` costs
 * nothing in the normal case.
 *
 * NOTE: written here rather than taken from `proper-lockfile` because that library decides
 * staleness by mtime alone (it keeps refreshing the mtime on a timer) and knows nothing
 * about the owner's PID: a crashed writer would block every other writer for the whole
 * stale period. Owner-PID detection frees a crashed writer's lock at once, and the code is
 * small enough to test here.
 */

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockTimeoutError } from '../errors.js';

/**
 * The cross-process lock a layout store takes around each read-modify-write of `index.json`
 * (the `locker` option). A narrow interface so the store does not depend on who implements it:
 * `@task-cache/lock`'s `acquireLockFile` has exactly this shape, and core passes it. Resolves once
 * the lock is held; `release()` is called exactly once.
 */
export type LayoutLocker = (
  path: string,
  options: { timeoutMs: number; staleMs?: number; signal?: AbortSignal },
) => Promise<HeldLock>;

/** Options of {@link acquireLock}. */
export interface LockOptions {
  /** Give up after this many milliseconds of waiting. */
  timeoutMs: number;
  /** A lock older than this is considered abandoned. */
  staleMs: number;
  signal?: AbortSignal | undefined;
}

/** The content of a lock file. */
interface LockOwner {
  pid: number;
  host: string;
  token: string;
  createdAt: number;
}

/** A held lock; call `release()` exactly once. */
export interface HeldLock {
  release(): Promise<void>;
}

const HOST = hostname();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (typeof parsed.pid === 'number' && typeof parsed.token === 'string') {
      return {
        pid: parsed.pid,
        token: parsed.token,
        host: String(parsed.host ?? ''),
        createdAt: Number(parsed.createdAt ?? 0),
      };
    }
  } catch {
    // Missing, or half-written by an owner that is still between open() and write().
  }
  return undefined;
}

async function isStale(path: string, owner: LockOwner | undefined, staleMs: number): Promise<boolean> {
  if (owner && owner.host === HOST && owner.pid !== process.pid && !isAlive(owner.pid)) return true;
  try {
    const { mtimeMs } = await stat(path);
    return Date.now() - mtimeMs > staleMs;
  } catch {
    return false; // gone already: the next attempt will simply take it
  }
}

/**
 * Breaks a stale lock without ever removing a fresh lock another process just took: the
 * file is first renamed aside (atomic), and only deleted when it is the stale one we saw.
 */
async function breakStale(path: string, seen: LockOwner | undefined): Promise<void> {
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else broke or released it first
  }
  const moved = await readOwner(aside);
  if (seen && moved && moved.token !== seen.token) {
    // NOTE: we raced with a process that took the lock after the stale one was removed;
    // put its lock back (link() fails if yet another process holds a lock by now).
    await link(aside, path).catch(() => {});
  }
  await unlink(aside).catch(() => {});
}

/** Takes the lock at `path`, waiting (with growing, jittered delays) while another holder has it. */
export async function acquireLock(path: string, options: LockOptions): Promise<HeldLock> {
  const token = randomBytes(12).toString('hex');
  const body = JSON.stringify({ pid: process.pid, host: HOST, token, createdAt: Date.now() });
  const deadline = Date.now() + options.timeoutMs;
  let delay = 2;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const handle = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
      try {
        await handle.writeFile(body);
      } finally {
        await handle.close();
      }
      return {
        release: async () => {
          const owner = await readOwner(path);
          // Never remove a lock that is no longer ours (it was broken as stale meanwhile).
          if (owner?.token === token) await unlink(path).catch(() => {});
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = await readOwner(path);
    if (await isStale(path, owner, options.staleMs)) {
      await breakStale(path, owner);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new LockTimeoutError(
        `timed out after ${options.timeoutMs} ms waiting for lock ${path} (held by ${owner ? `pid ${owner.pid} on ${owner.host}` : 'an unknown owner'})`,
        { path },
      );
    }
    await sleep(delay + Math.random() * delay, undefined, { signal: options.signal }).catch(
      (error: unknown) => {
        // Surface the signal's own reason, as every other abort point does.
        options.signal?.throwIfAborted();
        throw error;
      },
    );
    delay = Math.min(delay * 2, 50);
  }
}

/** The default {@link LayoutLocker}: this module's lock file. */
export const defaultLocker: LayoutLocker = (path, options) =>
  acquireLock(path, {
    timeoutMs: options.timeoutMs,
    staleMs: options.staleMs ?? 10_000,
    signal: options.signal,
  });
