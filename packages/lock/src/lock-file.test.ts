import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runChild } from '../test/helpers.js';
import { LockConfigError, LockTimeoutError, LockUnavailableError } from './errors.js';
import { breakStaleLockFile, tryLockFile } from './internal/lock-file.js';
import { acquireLockFile } from './lock-file.js';

let dir: string;
let path: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lock-file-'));
  path = join(dir, 'index.json.lock');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes a lock file as another owner would have left it, optionally `ageMs` old. */
async function plant(body: object | string, ageMs = 0): Promise<void> {
  await writeFile(path, typeof body === 'string' ? body : JSON.stringify(body));
  if (ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    await utimes(path, t, t);
  }
}
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;
const owner = async () => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;

describe('acquireLockFile', () => {
  it('writes the owner record atomically, excludes a second holder, releases only its own lock', async () => {
    const held = await acquireLockFile(path, { timeoutMs: 1_000 });
    expect(await owner()).toMatchObject({ pid: process.pid, host: hostname(), ttlMs: 10_000 });
    expect(typeof (await owner()).token).toBe('string');
    const second = acquireLockFile(path, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 50));
    await held.release();
    const next = await second;
    const token = (await owner()).token;
    await held.release(); // idempotent, and never removes the next holder's lock
    expect((await owner()).token).toBe(token);
    await next.release();
    expect(existsSync(path)).toBe(false);
    expect(await readdir(dir)).toEqual([]); // no temp files left behind
  });

  it('waits for a live holder and then times out with a typed LockTimeoutError naming it', async () => {
    await plant({ pid: process.pid, host: hostname(), token: 'x' });
    const error = await acquireLockFile(path, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error).toMatchObject({ code: 'LOCK_ERR_TIMEOUT', path });
    expect((error as Error).message).toContain(`pid ${process.pid} on ${hostname()}`);
    expect((await owner()).token).toBe('x');
  });

  it('breaks the lock of a dead process on this host at once, however young', async () => {
    await plant({ pid: deadPid(), host: hostname(), token: 'dead', ttlMs: 3_600_000 });
    const t0 = performance.now();
    const held = await acquireLockFile(path, { timeoutMs: 5_000, staleMs: 600_000 });
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect((await owner()).pid).toBe(process.pid);
    await held.release();
  });

  it('breaks a lock older than staleMs whatever its owner, but not a young one of another host', async () => {
    await plant({ pid: 1, host: 'another-host', token: 'young' });
    await expect(acquireLockFile(path, { timeoutMs: 100, staleMs: 60_000 })).rejects.toBeInstanceOf(
      LockTimeoutError,
    );
    await plant({ pid: 1, host: 'another-host', token: 'old' }, 60_000);
    const held = await acquireLockFile(path, { timeoutMs: 5_000, staleMs: 1_000 });
    expect((await owner()).token).not.toBe('old');
    await held.release();
  });

  it("judges a lock by its owner's TTL when it records one", async () => {
    // Recorded TTL 1 h: a 60 s old lock is still valid, whatever the acquirer's staleMs.
    await plant({ pid: 1, host: 'another-host', token: 'lease', ttlMs: 3_600_000 }, 60_000);
    await expect(acquireLockFile(path, { timeoutMs: 100, staleMs: 1_000 })).rejects.toBeInstanceOf(
      LockTimeoutError,
    );
  });

  it('breaks an unreadable (half-written) lock file only once it is older than staleMs', async () => {
    await plant('');
    await expect(acquireLockFile(path, { timeoutMs: 100, staleMs: 60_000 })).rejects.toBeInstanceOf(
      LockTimeoutError,
    );
    await plant('{"pid": 12', 60_000);
    const held = await acquireLockFile(path, { timeoutMs: 5_000, staleMs: 1_000 });
    expect((await owner()).pid).toBe(process.pid);
    await held.release();
  });

  it('stops waiting promptly with the signal reason', async () => {
    await plant({ pid: process.pid, host: hostname(), token: 'held' });
    const controller = new AbortController();
    const pending = acquireLockFile(path, { timeoutMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop now')), 50);
    const t0 = performance.now();
    await expect(pending).rejects.toThrow('stop now');
    expect(performance.now() - t0).toBeLessThan(1_000);
    await expect(
      acquireLockFile(path, { timeoutMs: 1_000, signal: AbortSignal.abort(new Error('before')) }),
    ).rejects.toThrow('before');
  });

  it('validates its arguments with typed errors', async () => {
    await expect(acquireLockFile('', { timeoutMs: 1 })).rejects.toBeInstanceOf(LockConfigError);
    await expect(acquireLockFile(path, { timeoutMs: -1 })).rejects.toThrow(/options\.timeoutMs/);
    await expect(acquireLockFile(path, { timeoutMs: 1, staleMs: 0 })).rejects.toThrow(/options\.staleMs/);
    await expect(acquireLockFile(path, undefined as never)).rejects.toMatchObject({ reason: 'option' });
  });

  it('a missing directory is a typed io error, not a raw ENOENT', async () => {
    const error = await acquireLockFile(join(dir, 'nope', 'x.lock'), { timeoutMs: 100 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LockUnavailableError);
    expect(error).toMatchObject({ code: 'LOCK_ERR_UNAVAILABLE', reason: 'io' });
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('ENOENT');
  });

  it('many concurrent acquirers in one process, starting on a stale lock: never two holders', async () => {
    await plant({ pid: deadPid(), host: hostname(), token: 'dead' });
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        const held = await acquireLockFile(path, { timeoutMs: 30_000 });
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 1));
        inside--;
        await held.release();
      }),
    );
    expect(most).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });

  // Regression (race on breaking): an acquirer judged a lock stale, and before it moved the file away
  // another process had broken it and taken a fresh lock; deleting what was moved would have removed
  // that fresh lock and let a third process in.
  it('breaking never removes a fresh lock that replaced the stale one meanwhile', async () => {
    const stale = JSON.stringify({ pid: deadPid(), host: hostname(), token: 'stale' });
    await plant(stale);
    const fresh = await acquireLockFile(path, { timeoutMs: 5_000 }); // broke the stale lock, holds a fresh one
    const freshToken = (await owner()).token;
    await breakStaleLockFile(path, stale); // the slow breaker, still acting on what it read before
    expect((await owner()).token).toBe(freshToken);
    const attempt = await tryLockFile(path, 'third', 10_000);
    expect(attempt.ok).toBe(false);
    await fresh.release();
    expect(existsSync(path)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('processes: 4 × 25 read-increment-write under the lock lose no update, starting on a stale lock', async () => {
    const counter = join(dir, 'counter');
    await writeFile(counter, '0');
    await plant({ pid: deadPid(), host: hostname(), token: 'dead' });
    const children = Array.from({ length: 4 }, () => runChild(['mutex', path, counter, '25']));
    for (const { code, stderr, lines } of await Promise.all(children.map((c) => c.exited))) {
      expect(code, stderr).toBe(0);
      expect(JSON.parse(lines[0]!)).toEqual({ done: 25 });
    }
    expect(await readFile(counter, 'utf8')).toBe('100');
    expect(existsSync(path)).toBe(false);
  });
});
