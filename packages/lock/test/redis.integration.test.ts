// Acceptance tests of issue 5 against the real redis-server (via @task-cache/testkit): no mocks here. The
// fault suite shared by every deployment (fault-suite.ts) runs here on a plain standalone server; this
// file adds what is specific to one server: an injected client, a frozen server, a READONLY replica,
// misconfiguration.
import { type RedisFixture, startBlackHole, startRedis } from '@task-cache/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AcquireOutcome, type Lease, type Lock, LockConfigError } from '../src/index.js';
import { connectLock, createRedisLock } from '../src/redis.js';
import { defineFaultSuite } from './fault-suite.js';
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

    it('issue 16: a black hole (accepts, never answers): connectLock and acquire are bounded by the connect timeout; a signal aborts connectLock at once', async () => {
      const hole = await startBlackHole();
      try {
        const url = `redis://:Hole-Secret-7@${hole.host}:${hole.port}/k`;
        const controller = new AbortController();
        const pending = connectLock(url, { connectTimeoutMs: 10_000, signal: controller.signal });
        await delay(100);
        let t0 = performance.now();
        controller.abort(new Error('stop connecting'));
        await expect(pending).rejects.toThrow('stop connecting');
        expect(performance.now() - t0).toBeLessThan(200);
        t0 = performance.now();
        const lock = await connectLock(url, { connectTimeoutMs: 1_000 });
        locks.push(lock);
        expect(performance.now() - t0).toBeLessThan(1_000 + 700);
        t0 = performance.now();
        const outcome = await lock.acquireOrWait('k');
        expect(performance.now() - t0).toBeLessThan(1_000 + 700);
        expect(outcome.kind).toBe('unavailable');
        expect(hole.accepted).toBeGreaterThan(0);
      } finally {
        await hole.close();
      }
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
});

defineFaultSuite('standalone', async () => ({
  url: (key) => redis.url(key ?? ''),
  command: (_key, ...args) => redis.command(...args),
  restartServerOf: async () => {
    await redis.kill();
    await redis.restart();
  },
  forceOom: () => redis.forceOom(),
  clearOom: () => redis.clearOom(),
  commandCalls: async (command) => commandCalls(String(await redis.command('INFO', 'commandstats')), command),
  stop: async () => {}, // the file's server, stopped in afterAll
}));
