/**
 * The one cross-process lock-file algorithm of task-cache: the primitive under `acquireLockFile` (a
 * short mutex, e.g. for an image layout's `index.json`) and under `createFileLock` (a lease with a TTL
 * and a heartbeat).
 *
 * - **Atomic create**: the owner's record is written in full to a private temp file, then `link`ed to the
 *   lock path; `link` fails with `EEXIST` when the lock is taken, so nobody ever sees a half-written lock
 *   of ours.
 * - **Owner record**: `{ token, pid, host, createdAt, ttlMs }` (JSON). `ttlMs` is how long the lock stays
 *   valid after its last heartbeat (the file's mtime): a lease touches its mtime every ttl/3, a mutex
 *   never does.
 * - **Stale** when its owner is a dead process on this host (freed at once, not after the TTL), or when
 *   its mtime is older than the owner's `ttlMs` (an owner on another host of a shared file system, a
 *   frozen or crashed process, a reused PID). A lock file that cannot be parsed (foreign, or half-written
 *   by an older writer that did not use `link`) is judged by its age alone, against the acquirer's TTL.
 * - **Safe breaking**: a stale lock is renamed aside (atomic) and only deleted when the file moved is
 *   byte-for-byte the one judged stale; a fresh lock that another process took in between is put back.
 *
 * NOTE: not `proper-lockfile`: it decides staleness by mtime alone and knows nothing of the owner's PID,
 * so a crashed writer would block every other one for the whole stale period.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { LockUnavailableError } from '../errors.js';

/** The content of a lock file. */
export interface LockFileOwner {
  token: string;
  pid: number;
  host: string;
  /** Wall-clock ms when the lock was taken. */
  createdAt: number;
  /** Validity after the last heartbeat (mtime), in ms. */
  ttlMs: number;
}

/** One attempt: taken, or held by someone else for about `remainingMs` more (unknown: `undefined`). */
export type LockFileAttempt =
  | { ok: true }
  | { ok: false; remainingMs: number | undefined; owner: LockFileOwner | undefined };

const HOST = hostname();

/** A lock file as read: gone, unparsable (judged by age), or an owner record. `raw` identifies it. */
type ReadResult =
  | { kind: 'missing' }
  | { kind: 'invalid'; raw: string }
  | { kind: 'ok'; raw: string; owner: LockFileOwner };

const errnoCode = (error: unknown): unknown => (error as NodeJS.ErrnoException | null)?.code;

/** File-system trouble with a lock file, typed (the path is no secret). */
export function lockFileIoError(error: unknown, path: string): LockUnavailableError {
  if (error instanceof LockUnavailableError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new LockUnavailableError('io', `lock file ${path}: ${message}`, { cause: error });
}

export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return errnoCode(error) === 'EPERM';
  }
}

async function readLockFile(path: string): Promise<ReadResult> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return { kind: 'missing' };
    throw error;
  }
  try {
    const parsed = JSON.parse(raw) as Partial<Record<keyof LockFileOwner, unknown>>;
    if (typeof parsed.token !== 'string') return { kind: 'invalid', raw };
    const owner: LockFileOwner = {
      token: parsed.token,
      pid: Number(parsed.pid),
      host: String(parsed.host ?? ''),
      createdAt: Number(parsed.createdAt ?? 0),
      ttlMs: Number(parsed.ttlMs),
    };
    return { kind: 'ok', raw, owner };
  } catch {
    return { kind: 'invalid', raw };
  }
}

/** The token of the lock at `path`, if it holds a readable one. */
async function tokenAt(path: string): Promise<string | undefined> {
  const read = await readLockFile(path);
  return read.kind === 'ok' ? read.owner.token : undefined;
}

/**
 * Moves the stale lock file aside, but deletes it only if it is still the very file judged stale (`raw`).
 * Exported for the race test.
 */
export async function breakStaleLockFile(path: string, raw: string): Promise<void> {
  const aside = `${path}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else broke or released it first
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== raw) {
    // NOTE: between our read and our rename another process replaced the stale file with a fresh lock:
    // put it back (link fails if yet another one appeared; that holder then wins and the displaced one
    // notices on its next heartbeat, or at release).
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

/**
 * One attempt to take the lock at `path` for `token`: creates it atomically, or breaks a stale one and
 * tries once more. `ttlMs` is written into the record (how long the lock stays valid without a heartbeat)
 * and judges unparsable lock files.
 * @throws {LockUnavailableError} reason `'io'` for file-system trouble (a missing directory, EACCES, …).
 */
export async function tryLockFile(path: string, token: string, ttlMs: number): Promise<LockFileAttempt> {
  const record: LockFileOwner = { token, pid: process.pid, host: HOST, createdAt: Date.now(), ttlMs };
  const tmp = `${path}.${token}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(record));
    try {
      let last: LockFileOwner | undefined;
      for (let round = 0; round < 2; round++) {
        try {
          await link(tmp, path);
          return { ok: true };
        } catch (error) {
          if (errnoCode(error) !== 'EEXIST') throw error;
        }
        const existing = await readLockFile(path);
        if (existing.kind === 'missing') continue; // released meanwhile: try again
        let mtimeMs: number;
        try {
          mtimeMs = (await stat(path)).mtimeMs;
        } catch (error) {
          if (errnoCode(error) === 'ENOENT') continue; // released meanwhile: try again
          throw error;
        }
        const owner = existing.kind === 'ok' ? existing.owner : undefined;
        last = owner;
        const validFor = owner && Number.isFinite(owner.ttlMs) && owner.ttlMs > 0 ? owner.ttlMs : ttlMs;
        const age = Date.now() - mtimeMs;
        const ownerGone = owner !== undefined && owner.host === HOST && !pidAlive(owner.pid);
        if (!ownerGone && age <= validFor) {
          return { ok: false, remainingMs: Math.max(0, Math.ceil(validFor - age)), owner };
        }
        if (round === 0) await breakStaleLockFile(path, existing.raw);
      }
      // Lost the race after breaking a stale lock: someone else holds it now.
      return { ok: false, remainingMs: undefined, owner: last };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  } catch (error) {
    throw lockFileIoError(error, path);
  }
}

/**
 * Heartbeat: touches the lock's mtime if it still holds `token`.
 * @returns `false` when the lock is gone or someone else's.
 * @throws {LockUnavailableError} reason `'io'`.
 */
export async function refreshLockFile(path: string, token: string): Promise<boolean> {
  try {
    if ((await tokenAt(path)) !== token) return false;
    const t = new Date();
    await utimes(path, t, t);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw lockFileIoError(error, path);
  }
}

/**
 * Removes the lock if it still holds `token`.
 * @returns `true` if this call removed it.
 * @throws {LockUnavailableError} reason `'io'`.
 */
export async function releaseLockFile(path: string, token: string): Promise<boolean> {
  try {
    if ((await tokenAt(path)) !== token) return false;
    await unlink(path);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw lockFileIoError(error, path);
  }
}
