// Acceptance tests of issue 5 against the real redis-server (via @task-cache/testkit): no mocks here.
import { type RedisFixture, startRedis } from '@task-cache/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AcquireOutcome, type Lease, LeaseLostError, type Lock, LockConfigError } from '../src/index.js';
import { connectLock, createRedisLock } from '../src/redis.js';
import { commandCalls, delay, runChild } from './helpers.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
process.on('unhandledRejection', onUnhandled);

const acquired = (outcome: AcquireOutcome): Lease => {
  if (outcome.kind !== 'acquired') throw new Error(`expected acquired, got ${outcome.kind}`);
  return outcome.lease;
};

let redis: RedisFixture;
const locks: Lock[] = [];
/** Each call gets its own connection settings (commandTimeoutMs differs) so pooled connections stay apart. */
let distinct = 0;
const open = async (options: Parameters<typeof connectLock>[1] = {}) => {
  const lock = await connectLock(redis.url('lock:test'), {
    commandTimeoutMs: 1_000 + ++distinct,
    ...options,
  });
  locks.push(lock);
  return lock;
};

beforeAll(async () => {
  redis = await startRedis({
    maxmemory: '64mb',
    users: [{ name: 'limited', password: 'limited-Secret-9', rules: '~allowed:* +@all' }],
  });
});
afterEach(async () => {
  await Promise.all(locks.splice(0).map((l) => l.close()));
  expect(unhandled).toEqual([]);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await redis?.stop();
});

describe('redis lock (real redis-server)', () => {
  it('acquire, hold past the TTL by renewing, release; fence grows; key and channel share a hash tag', async () => {
    const lock = await open({ ttlMs: 1_000 });
    expect(lock.key).toBe('lock:test');
    const lease = acquired(await lock.acquireOrWait('basic'));
    expect(Number(await redis.command('PTTL', '{basic}'))).toBeGreaterThan(0);
    await delay(1_500);
    expect(lease.isValid()).toBe(true);
    expect(Number(await redis.command('EXISTS', '{basic}'))).toBe(1);
    expect(await lease.release('built')).toBe(true);
    expect(await lease.release('built')).toBe(false);
    expect(Number(await redis.command('EXISTS', '{basic}'))).toBe(0);
    const again = acquired(await lock.acquireOrWait('basic'));
    expect(again.fence).toBeGreaterThan(lease.fence);
    await again.release();
    // A key with its own hash tag keeps its name (ACL patterns such as ~lock:* keep matching).
    const tagged = acquired(await lock.acquireOrWait('lock:{abc}'));
    expect(Number(await redis.command('EXISTS', 'lock:{abc}'))).toBe(1);
    expect(Number(await redis.command('EXISTS', 'lock:{abc}:fence'))).toBe(1);
    await tagged.release();
  });

  it('an injected ioredis client: acquire, notice through the duplicated subscriber, the client stays open', async () => {
    const client = new Redis({
      host: redis.host,
      port: redis.port,
      password: redis.password,
      commandTimeout: 2_000,
    });
    client.on('error', () => {});
    try {
      const lock = createRedisLock(client, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
      const lease = acquired(await lock.acquireOrWait('injected'));
      const waiter = lock.acquireOrWait('injected');
      await delay(200);
      await lease.release('built');
      expect(await waiter).toEqual({ kind: 'peer-finished' }); // 60 s backoff: only the notice ends it
      await lock.close();
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });

  it('contention: 20 holders in separate processes never overlap, fences increase, all finish', async () => {
    const url = redis.url('lock:contention');
    // A 10 s TTL: a holder starved of CPU for seconds on this shared machine must not lose its lease.
    const children = Array.from({ length: 20 }, () => runChild(['hold', url, 'contention', '25', '10000']));
    const results = await Promise.all(children.map((c) => c.exited));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const log = results
      .map(
        (r) =>
          JSON.parse(r.lines[0]!) as {
            kind: string;
            fence: number;
            start: number;
            end: number;
            valid: boolean;
          },
      )
      .sort((a, b) => a.start - b.start);
    expect(
      log.map((l) => l.kind),
      JSON.stringify(log),
    ).toEqual(Array(20).fill('acquired'));
    for (const [i, entry] of log.entries()) {
      expect(entry.valid, JSON.stringify(entry)).toBe(true);
      if (i === 0) continue;
      const prev = log[i - 1]!;
      expect(entry.start, `holder ${i} started before holder ${i - 1} ended`).toBeGreaterThanOrEqual(
        prev.end,
      );
      expect(entry.fence).toBeGreaterThan(prev.fence);
    }
  });

  it('SIGKILL + empty restart during a lease: lease lost without re-creating the key, waiter re-acquires, fences still grow', async () => {
    const holderLock = await open({ ttlMs: 1_500 });
    const waiterLock = await open({ ttlMs: 1_500, backoff: { initialMs: 50, maxMs: 200 } });
    const lease = acquired(await holderLock.acquireOrWait('restart'));
    const waiter = waiterLock.acquireOrWait('restart', { isDone: () => false });
    await delay(100);
    await redis.kill();
    await redis.restart();
    const reason = await new Promise<unknown>((resolve) =>
      lease.signal.addEventListener('abort', () => resolve(lease.signal.reason), { once: true }),
    );
    expect(reason).toBeInstanceOf(LeaseLostError);
    // 'stolen': the first renewal after the restart found the key gone (an expiry would say 'expired').
    expect((reason as LeaseLostError).reason).toBe('stolen');
    expect(lease.isValid()).toBe(false);
    const next = acquired(await waiter);
    expect(next.fence).toBeGreaterThan(lease.fence);
    // The old holder never re-creates the key: it holds the waiter's token now.
    expect(await lease.release('built')).toBe(false);
    expect(next.isValid()).toBe(true);
    expect(await next.release()).toBe(true);
    expect(Number(await redis.command('EXISTS', '{restart}'))).toBe(0);
  });

  it('holder SIGSTOPped past its TTL: a waiter takes over; after SIGCONT the old lease is invalid and its release deletes nothing', async () => {
    const child = runChild(['pause', redis.url('lock:x'), 'paused', '1000']);
    const { fence: oldFence } = JSON.parse(await child.nextLine()) as { fence: number };
    child.kill('SIGSTOP');
    try {
      const lock = await open({ ttlMs: 1_000, backoff: { initialMs: 50, maxMs: 300 } });
      const lease = acquired(await lock.acquireOrWait('paused', { isDone: () => false }));
      expect(lease.fence).toBeGreaterThan(oldFence);
      child.kill('SIGCONT');
      child.write('release\n');
      const report = JSON.parse(await child.nextLine()) as { valid: boolean; released: boolean };
      expect(report).toMatchObject({ valid: false, released: false });
      expect(lease.isValid()).toBe(true);
      expect(await lease.release()).toBe(true);
    } finally {
      child.kill('SIGCONT');
    }
    expect((await child.exited).code).toBe(0);
  });

  it('redis frozen (SIGSTOP): calls end within the command timeout; a timed-out acquire leaves no orphan beyond the TTL', async () => {
    const commandTimeoutMs = 1_500;
    const ttlMs = 1_500;
    const lock = await open({ ttlMs, commandTimeoutMs, connectTimeoutMs: 1_500 });
    const held = acquired(await lock.acquireOrWait('frozen-held'));
    redis.pause();
    let resumed = false;
    try {
      let t0 = performance.now();
      const outcome = await lock.acquireOrWait('frozen');
      // Bound: the command timeout (plus scheduling slack on a loaded machine, less than one more
      // command timeout, so two sequential timed-out calls would fail this) — it must not hang.
      expect(performance.now() - t0).toBeLessThan(commandTimeoutMs + 1_000);
      expect(outcome.kind).toBe('unavailable');
      expect(outcome.kind === 'unavailable' && outcome.error.reason).toBe('timeout');
      t0 = performance.now();
      expect(await held.release('built')).toBe(false);
      expect(performance.now() - t0).toBeLessThan(commandTimeoutMs + 1_000);
      t0 = performance.now();
      const other = await connectLock(redis.url('k'), { connectTimeoutMs: 1_000, commandTimeoutMs: 999 });
      locks.push(other);
      expect(performance.now() - t0).toBeLessThan(1_000 + 900);
      redis.resume();
      resumed = true;
      // The frozen SET NX ran after SIGCONT: at most one TTL of orphan, then gone.
      const pttl = Number(await redis.command('PTTL', '{frozen}'));
      expect(pttl).toBeLessThanOrEqual(ttlMs);
      await delay(ttlMs + 200);
      expect(Number(await redis.command('EXISTS', '{frozen}'))).toBe(0);
    } finally {
      if (!resumed) redis.resume();
    }
  });

  it('OOM with noeviction: acquire is unavailable within the command timeout; a holder keeps renewing and can release', async () => {
    const commandTimeoutMs = 1_000;
    const lock = await open({ ttlMs: 1_200, commandTimeoutMs });
    const lease = acquired(await lock.acquireOrWait('oom-held'));
    await redis.forceOom();
    try {
      const t0 = performance.now();
      const outcome = await lock.acquireOrWait('oom-new');
      expect(performance.now() - t0).toBeLessThan(commandTimeoutMs + 700);
      expect(outcome.kind).toBe('unavailable');
      expect(outcome.kind === 'unavailable' && outcome.error.reason).toBe('oom');
      expect(outcome.kind === 'unavailable' && outcome.error.message).toContain('OOM');
      await delay(2_500); // > 2 TTLs: only PEXPIRE renewals keep the lease alive
      expect(lease.isValid()).toBe(true);
      expect(Number(await redis.command('PTTL', '{oom-held}'))).toBeGreaterThan(0);
      expect(await lease.release('built')).toBe(true);
      expect(Number(await redis.command('EXISTS', '{oom-held}'))).toBe(0);
    } finally {
      await redis.clearOom();
    }
  });

  it('a READONLY replica: acquire reports unavailable (readonly) at once, no wait', async () => {
    const replica = await startRedis({ password: redis.password });
    try {
      await replica.command('CONFIG', 'SET', 'masterauth', redis.password!);
      await replica.command('REPLICAOF', redis.host, String(redis.port));
      const lock = await connectLock(replica.url('k'));
      locks.push(lock);
      const outcome = await lock.acquireOrWait('replica-key', { waitTimeoutMs: 60_000 });
      expect(outcome.kind).toBe('unavailable');
      expect(outcome.kind === 'unavailable' && outcome.error.reason).toBe('readonly');
    } finally {
      await replica.stop();
    }
  });

  describe('misconfiguration: typed error within the connect timeout, process exits on its own, no password in the message', () => {
    const connectTimeoutMs = 2_000;
    const cases: Array<[string, () => string, string, string | undefined, string]> = [
      [
        'wrong password',
        () => redis.url('k').replace(/:[^:@/]+@/, ':Wrong-Secret-1@'),
        'auth',
        undefined,
        'Wrong-Secret-1',
      ],
      ['no password', () => redis.url('k').replace(/:[^:@/]+@/, ''), 'auth', undefined, '\u0000'],
      [
        'ACL user without key permission',
        () => redis.url('lock', { name: 'limited', password: 'limited-Secret-9' }),
        'permission',
        'denied:key',
        'limited-Secret-9',
      ],
      [
        'rediss:// to a plaintext port',
        () => redis.url('k').replace('redis://', 'rediss://'),
        'tls',
        undefined,
        'PASSWORD',
      ],
      [
        'unencoded @ in the password',
        () => redis.url('k').replace(/:([^:@/]+)@/, ':Pa@ss-Secret-2@'),
        'url',
        undefined,
        'Pa@ss-Secret-2',
      ],
      ['non-numeric database', () => `${redis.url('k')}?db=abc`, 'url', undefined, 'PASSWORD'],
      ['database out of range', () => `${redis.url('k')}?db=99`, 'url', undefined, 'PASSWORD'],
    ];
    it.each(cases)('%s', async (_name, makeUrl, reason, key, secret) => {
      const url = makeUrl();
      const child = runChild(['misconfig', url, String(connectTimeoutMs), ...(key ? [key] : [])], 30_000);
      const { code, signal, lines, stderr } = await child.exited;
      expect(signal, 'the child had to be killed: something kept it alive').toBeNull();
      expect(code, stderr).toBe(0);
      const report = JSON.parse(lines[0]!) as Record<string, unknown>;
      expect(report).toMatchObject({
        ok: false,
        isLockError: true,
        name: 'LockConfigError',
        code: 'LOCK_ERR_CONFIG',
        reason,
      });
      expect(report.ms as number).toBeLessThan(connectTimeoutMs + 1_000);
      const password = secret === 'PASSWORD' ? redis.password! : secret;
      for (const field of ['message', 'stack', 'cause', 'inspected'])
        expect(String(report[field])).not.toContain(password);
      expect(String(report.message)).not.toContain(redis.password!);
    });

    it('the ACL user works on keys it may touch (hash tag kept inside its prefix)', async () => {
      const lock = await connectLock(redis.url('x', { name: 'limited', password: 'limited-Secret-9' }));
      locks.push(lock);
      const lease = acquired(await lock.acquireOrWait('allowed:{build-1}'));
      expect(await lease.release('built')).toBe(true);
    });

    it('an unreachable Redis is not a configuration error: acquire reports unavailable', async () => {
      const lock = await connectLock('redis://:pw@127.0.0.1:1/k', { connectTimeoutMs: 1_000 });
      locks.push(lock);
      const outcome = await lock.acquireOrWait('k');
      expect(outcome.kind).toBe('unavailable');
      await expect(lock.acquireOrWait('k', { onUnavailable: 'throw' })).rejects.toMatchObject({
        code: 'LOCK_ERR_UNAVAILABLE',
      });
      await expect(connectLock('redis://:p@w@127.0.0.1:1/k')).rejects.toBeInstanceOf(LockConfigError);
      await expect(connectLock('rediss://:pw@127.0.0.1:1/k?ca=/nonexistent/ca.pem')).rejects.toMatchObject({
        code: 'LOCK_ERR_CONFIG',
        reason: 'url',
        message: expect.stringContaining('cannot read the CA file given by ?ca= (/nonexistent/ca.pem)'),
      });
    });
  });

  it('herd of 50: after built all see the result within the backoff cap with ≤ 5 SET NX; after failed exactly one acquires', async () => {
    const maxMs = 2_000;
    const holderLock = await open({ ttlMs: 10_000 });
    const waiterLock = await open({ ttlMs: 10_000, backoff: { initialMs: 100, maxMs } });
    const setCalls = async () => commandCalls(String(await redis.command('INFO', 'commandstats')), 'set');

    // built
    let done = false;
    const first = acquired(await holderLock.acquireOrWait('herd'));
    const settledAt: number[] = [];
    const waiters = Array.from({ length: 50 }, () =>
      waiterLock.acquireOrWait('herd', { isDone: () => done }).then((o) => {
        settledAt.push(performance.now());
        return o;
      }),
    );
    await delay(2_500); // everyone is deep in its backoff
    const before = await setCalls();
    done = true;
    const releasedAt = performance.now();
    await first.release('built');
    const outcomes = await Promise.all(waiters);
    expect(outcomes.map((o) => o.kind)).toEqual(Array(50).fill('peer-finished'));
    expect(Math.max(...settledAt) - releasedAt).toBeLessThan(maxMs);
    await delay(Math.max(0, 1_000 - (performance.now() - releasedAt)));
    expect((await setCalls()) - before).toBeLessThanOrEqual(5);

    // failed
    done = false;
    const second = acquired(await holderLock.acquireOrWait('herd'));
    const winners: Lease[] = [];
    const waiters2 = Array.from({ length: 50 }, () =>
      waiterLock.acquireOrWait('herd', { isDone: () => done }).then((o) => {
        if (o.kind === 'acquired') winners.push(o.lease);
        return o;
      }),
    );
    await delay(1_000);
    await second.release('failed');
    await delay(1_000);
    expect(winners).toHaveLength(1); // the other 49 are still waiting
    done = true;
    await winners[0]!.release('built');
    const outcomes2 = await Promise.all(waiters2);
    expect(outcomes2.filter((o) => o.kind === 'acquired')).toHaveLength(1);
    expect(outcomes2.filter((o) => o.kind === 'peer-finished')).toHaveLength(49);
  });
});
