import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runChild } from '../test/helpers.js';
import { LeaseLostError, LockConfigError } from './errors.js';
import { createFileLock } from './file-lock.js';
import type { AcquireOutcome, Lease, Lock } from './types.js';

const dirs: string[] = [];
const locks: Lock[] = [];
const tempDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lock-file-'));
  dirs.push(dir);
  return dir;
};
const open = (dir: string, ttlMs = 2_000) => {
  const lock = createFileLock(dir, { ttlMs, backoff: { initialMs: 10, maxMs: 50 } });
  locks.push(lock);
  return lock;
};
const acquired = (outcome: AcquireOutcome): Lease => {
  if (outcome.kind !== 'acquired') throw new Error(`expected acquired, got ${outcome.kind}`);
  return outcome.lease;
};
/** Writes a lock file as another owner would have left it. */
const plant = async (dir: string, key: string, owner: { pid: number; ttlMs: number; host?: string }) => {
  // Learn the file name by acquiring and releasing once.
  const probe = createFileLock(dir);
  const lease = acquired(await probe.acquireOrWait(key));
  const file = (await readdir(dir)).find((f) => f.endsWith('.lock'))!;
  await lease.release();
  const path = join(dir, file);
  await writeFile(path, JSON.stringify({ token: 'planted', host: hostname(), ...owner }));
  return path;
};

afterEach(async () => {
  await Promise.all(locks.splice(0).map((l) => l.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('createFileLock', () => {
  it('excludes a second instance until release; fences grow; release is idempotent', async () => {
    const dir = await tempDir();
    const a = open(dir);
    const b = open(dir);
    const lease = acquired(await a.acquireOrWait('key/with:odd*chars'));
    expect(await b.acquireOrWait('key/with:odd*chars', { waitTimeoutMs: 100 })).toEqual({
      kind: 'timed-out',
    });
    const waiter = b.acquireOrWait('key/with:odd*chars', { isDone: () => false });
    expect(await lease.release('failed')).toBe(true);
    expect(await lease.release('failed')).toBe(false);
    const next = acquired(await waiter);
    expect(next.fence).toBeGreaterThan(lease.fence);
    await next.release();
    expect((await readdir(dir)).filter((f) => f.endsWith('.lock'))).toEqual([]);
  });

  it('breaks a lock whose owner PID is gone', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await plant(dir, 'k', { pid: dead, ttlMs: 3_600_000 });
    const lease = acquired(await open(dir).acquireOrWait('k', { waitTimeoutMs: 5_000 }));
    expect(lease.isValid()).toBe(true);
  });

  it('breaks a lock whose heartbeat (mtime) is older than its TTL, not a fresh one', async () => {
    const dir = await tempDir();
    const path = await plant(dir, 'k', { pid: process.pid, ttlMs: 1_000 });
    expect((await open(dir).acquireOrWait('k', { waitTimeoutMs: 200 })).kind).toBe('timed-out');
    const old = new Date(Date.now() - 5_000);
    await utimes(path, old, old);
    const lease = acquired(await open(dir).acquireOrWait('k', { waitTimeoutMs: 5_000 }));
    expect(JSON.parse(await readFile(path, 'utf8')).token).not.toBe('planted');
    await lease.release();
  });

  it('a holder whose lock file was taken over loses its lease (stolen)', async () => {
    const dir = await tempDir();
    const lease = acquired(await open(dir, 3_000).acquireOrWait('k'));
    const file = (await readdir(dir)).find((f) => f.endsWith('.lock'))!;
    await writeFile(
      join(dir, file),
      JSON.stringify({ token: 'other', pid: process.pid, host: hostname(), ttlMs: 1 }),
    );
    const reason = await new Promise((r) =>
      lease.signal.addEventListener('abort', () => r(lease.signal.reason)),
    );
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect((reason as LeaseLostError).reason).toBe('stolen');
    expect(await lease.release()).toBe(false);
  });

  // Regression (lock-file stale-break race): a lock released and re-taken between an acquirer's read and
  // stat was judged stale and deleted, so two processes held it; this contention run caught it.
  it('processes: 8 holders never overlap; a SIGKILLed holder is replaced without waiting for its TTL', async () => {
    const dir = await tempDir();
    const children = Array.from({ length: 8 }, () =>
      runChild(['hold', `file:${dir}`, 'shared', '20', '5000']),
    );
    const results = await Promise.all(children.map((c) => c.exited));
    const log = results
      .map((r) => {
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.lines[0]!) as { fence: number; start: number; end: number; valid: boolean };
      })
      .sort((a, b) => a.start - b.start);
    for (let i = 1; i < log.length; i++) {
      expect(log[i]!.start).toBeGreaterThanOrEqual(log[i - 1]!.end);
      expect(log[i]!.fence).toBeGreaterThan(log[i - 1]!.fence);
    }

    const holder = runChild(['pause', `file:${dir}`, 'killed', '3600000']);
    await holder.nextLine();
    holder.kill('SIGKILL');
    await holder.exited;
    const lease = acquired(await open(dir).acquireOrWait('killed', { waitTimeoutMs: 10_000 }));
    await lease.release();
  });

  it('rejects a missing directory argument', () => {
    expect(() => createFileLock('')).toThrow(LockConfigError);
  });
});
