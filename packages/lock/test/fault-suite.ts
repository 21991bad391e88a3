// The lock's fault suite, one definition run on every Redis deployment (standalone, standalone over
// TLS with an ACL user, Sentinel, Cluster): holders never overlap, a SIGKILLed / SIGSTOPped holder, an
// empty server restart, OOM, a herd of 50. Each deployment's file starts its topology once and calls
// defineFaultSuite with a harness; no mocks.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AcquireOutcome, type Lease, LeaseLostError, type Lock } from '../src/index.js';
import { lockKeys } from '../src/internal/scripts.js';
import { connectLock, type RedisLockOptions } from '../src/redis.js';
import { commandCalls, delay, runChild } from './helpers.js';

/** What the suite needs of a deployment. `key` arguments are lock keys (the suite maps them to Redis keys). */
export interface LockDeploymentHarness {
  /** The lock URL of the deployment (with the key as its path when given). */
  url(key?: string): string;
  /** Runs one command on the server that serves the Redis key `redisKey` (the master, the slot owner). */
  command(redisKey: string, ...args: Array<string | number>): Promise<unknown>;
  /** SIGKILL, then an empty restart of the server that serves `redisKey`. */
  restartServerOf(redisKey: string): Promise<void>;
  /** Makes writes on the server serving `redisKey` fail with OOM (reads keep working). */
  forceOom(redisKey: string): Promise<void>;
  clearOom(redisKey: string): Promise<void>;
  /** `calls` of one command summed over the servers that take writes. */
  commandCalls(command: string): Promise<number>;
  /** Stops the deployment. */
  stop(): Promise<void>;
  /**
   * The lease TTL of the restart test: above the time the deployment takes to serve a restarted server's
   * slots again (a Cluster needs a few seconds to converge). @default 1_500
   */
  restartTtlMs?: number;
}

const acquired = (outcome: AcquireOutcome): Lease => {
  if (outcome.kind !== 'acquired') throw new Error(`expected acquired, got ${outcome.kind}`);
  return outcome.lease;
};

const exists = async (h: LockDeploymentHarness, redisKey: string) =>
  Number(await h.command(redisKey, 'EXISTS', redisKey));

/**
 * Defines the fault suite for one deployment. `prefix` starts every lock key (an ACL user may be limited
 * to it); keys carry no hash tag of their own, so the lock adds one, and keys meant to share a server
 * share a tag.
 */
export function defineFaultSuite(
  name: string,
  start: () => Promise<LockDeploymentHarness>,
  prefix = 'lock:',
) {
  describe(`lock fault suite: ${name}`, () => {
    let h: LockDeploymentHarness;
    const locks: Lock[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    /** Each lock gets its own connection settings (commandTimeoutMs differs) so pooled connections stay apart. */
    let distinct = 0;
    const open = async (options: RedisLockOptions = {}) => {
      const lock = await connectLock(h.url(), { commandTimeoutMs: 3_000 + ++distinct, ...options });
      locks.push(lock);
      return lock;
    };
    const k = (key: string) => `${prefix}${key}`;

    beforeAll(async () => {
      process.on('unhandledRejection', onUnhandled);
      h = await start();
    });
    afterEach(async () => {
      await Promise.all(locks.splice(0).map((l) => l.close()));
      expect(unhandled).toEqual([]);
    });
    afterAll(async () => {
      process.off('unhandledRejection', onUnhandled);
      await h?.stop();
    });

    it('acquire, hold past the TTL by renewing, release; fence grows; lease, fence and channel share one hash slot', async () => {
      const lock = await open({ ttlMs: 1_000 });
      const key = k('basic');
      const names = lockKeys(key);
      expect(names.lease).toBe(`{${key}}`);
      expect(names.fence.startsWith(`{${key}}`) && names.channel.startsWith(`{${key}}`)).toBe(true);
      const lease = acquired(await lock.acquireOrWait(key));
      expect(Number(await h.command(names.lease, 'PTTL', names.lease))).toBeGreaterThan(0);
      const slot = await h.command(names.lease, 'CLUSTER', 'KEYSLOT', names.lease).catch(() => undefined);
      if (slot !== undefined) {
        for (const other of [names.fence, names.channel])
          expect(await h.command(names.lease, 'CLUSTER', 'KEYSLOT', other)).toBe(slot);
      }
      await delay(1_500);
      expect(lease.isValid()).toBe(true);
      expect(await exists(h, names.lease)).toBe(1);
      expect(await lease.release('built')).toBe(true);
      expect(await lease.release('built')).toBe(false);
      expect(await exists(h, names.lease)).toBe(0);
      const again = acquired(await lock.acquireOrWait(key));
      expect(again.fence).toBeGreaterThan(lease.fence);
      await again.release();
    });

    it('a release notice reaches a waiter whose backoff is 60 s (pub/sub of this deployment works)', async () => {
      const holder = await open();
      const waiterLock = await open({ backoff: { initialMs: 60_000, maxMs: 60_000 } });
      const key = k('notice');
      const lease = acquired(await holder.acquireOrWait(key));
      const waiter = waiterLock.acquireOrWait(key);
      // Release only once the waiter's subscription is active on the server (classic or sharded; on a
      // loaded machine a Cluster subscriber takes more than a moment): a release before it would be
      // caught by the waiter's next attempt, which then acquires instead of hearing 'built'.
      const channel = lockKeys(key).channel;
      for (const deadline = Date.now() + 15_000; ; await delay(20)) {
        const classic = (await h.command(channel, 'PUBSUB', 'NUMSUB', channel)) as [string, number];
        const sharded = (await h
          .command(channel, 'PUBSUB', 'SHARDNUMSUB', channel)
          .catch(() => [channel, 0])) as [string, number];
        if (Number(classic[1]) + Number(sharded[1]) > 0) break;
        if (Date.now() > deadline) throw new Error('the waiter never subscribed');
      }
      // Once subscribed, the waiter attempts once more at once (to catch a release it might have
      // missed); a release between the subscription and that attempt is rightly caught by the attempt
      // (it acquires — CI saw it on a Cluster). Let that attempt land first: a round trip, not 60 s.
      await delay(1_000);
      const t0 = performance.now();
      await lease.release('built');
      expect(await waiter).toEqual({ kind: 'peer-finished' });
      expect(performance.now() - t0).toBeLessThan(5_000);
    });

    it('contention: 20 holders in separate processes never overlap, fences increase, all finish', async () => {
      const url = h.url();
      // A 10 s TTL: a holder starved of CPU for seconds on this shared machine must not lose its lease.
      const children = Array.from({ length: 20 }, () =>
        runChild(['hold', url, k('contention'), '25', '10000']),
      );
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

    it('SIGKILL + empty restart of the server during a lease: lease lost without re-creating the key, waiter re-acquires, fences still grow', async () => {
      const ttlMs = h.restartTtlMs ?? 1_500;
      const holderLock = await open({ ttlMs });
      const waiterLock = await open({ ttlMs, backoff: { initialMs: 50, maxMs: 200 } });
      const key = k('restart');
      const lease = acquired(await holderLock.acquireOrWait(key));
      const waiter = waiterLock.acquireOrWait(key, { isDone: () => false });
      await delay(100);
      await h.restartServerOf(lockKeys(key).lease);
      // NOTE: the reconnect re-validates at once, so the lease may be lost before the restart returns.
      const reason = lease.signal.aborted
        ? lease.signal.reason
        : await new Promise<unknown>((resolve) =>
            lease.signal.addEventListener('abort', () => resolve(lease.signal.reason), { once: true }),
          );
      expect(reason).toBeInstanceOf(LeaseLostError);
      // 'stolen': the renewal after the restart (the reconnect re-validates at once) found the key gone.
      expect((reason as LeaseLostError).reason).toBe('stolen');
      expect(lease.isValid()).toBe(false);
      const next = acquired(await waiter);
      expect(next.fence).toBeGreaterThan(lease.fence);
      // The old holder never re-creates the key: it holds the waiter's token now.
      expect(await lease.release('built')).toBe(false);
      expect(next.isValid()).toBe(true);
      expect(await next.release()).toBe(true);
      expect(await exists(h, lockKeys(key).lease)).toBe(0);
    });

    it('holder SIGSTOPped past its TTL: a waiter takes over; after SIGCONT the old lease is invalid and its release deletes nothing', async () => {
      const child = runChild(['pause', h.url(), k('paused'), '1000']);
      const { fence: oldFence } = JSON.parse(await child.nextLine()) as { fence: number };
      child.kill('SIGSTOP');
      try {
        const lock = await open({ ttlMs: 1_000, backoff: { initialMs: 50, maxMs: 300 } });
        const lease = acquired(await lock.acquireOrWait(k('paused'), { isDone: () => false }));
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

    it('OOM with noeviction: acquire is unavailable within the command timeout; a holder keeps renewing and can release', async () => {
      const commandTimeoutMs = 1_500;
      const lock = await open({ ttlMs: 1_200, commandTimeoutMs });
      // One hash tag: both leases live on the same server.
      const held = k('{oom}:held');
      const fresh = k('{oom}:new');
      const lease = acquired(await lock.acquireOrWait(held));
      await h.forceOom(lockKeys(held).lease);
      try {
        const t0 = performance.now();
        const outcome = await lock.acquireOrWait(fresh);
        expect(performance.now() - t0).toBeLessThan(commandTimeoutMs + 700);
        expect(outcome.kind).toBe('unavailable');
        expect(outcome.kind === 'unavailable' && outcome.error.reason).toBe('oom');
        await delay(2_500); // > 2 TTLs: only PEXPIRE renewals keep the lease alive
        expect(lease.isValid()).toBe(true);
        expect(Number(await h.command(lockKeys(held).lease, 'PTTL', lockKeys(held).lease))).toBeGreaterThan(
          0,
        );
        expect(await lease.release('built')).toBe(true);
        expect(await exists(h, lockKeys(held).lease)).toBe(0);
      } finally {
        await h.clearOom(lockKeys(held).lease);
      }
    });

    it('herd of 50: after built all see the result within the backoff cap with ≤ 5 SET NX; after failed exactly one acquires', async () => {
      const maxMs = 2_000;
      const key = k('herd');
      const holderLock = await open({ ttlMs: 10_000 });
      const waiterLock = await open({ ttlMs: 10_000, backoff: { initialMs: 100, maxMs } });

      // built
      let done = false;
      const first = acquired(await holderLock.acquireOrWait(key));
      const settledAt: number[] = [];
      const waiters = Array.from({ length: 50 }, () =>
        waiterLock.acquireOrWait(key, { isDone: () => done }).then((o) => {
          settledAt.push(performance.now());
          return o;
        }),
      );
      await delay(2_500); // everyone is deep in its backoff
      const before = await h.commandCalls('set');
      done = true;
      const releasedAt = performance.now();
      await first.release('built');
      const outcomes = await Promise.all(waiters);
      expect(outcomes.map((o) => o.kind)).toEqual(Array(50).fill('peer-finished'));
      expect(Math.max(...settledAt) - releasedAt).toBeLessThan(maxMs);
      await delay(Math.max(0, 1_000 - (performance.now() - releasedAt)));
      expect((await h.commandCalls('set')) - before).toBeLessThanOrEqual(5);

      // failed
      done = false;
      const second = acquired(await holderLock.acquireOrWait(key));
      const winners: Lease[] = [];
      const waiters2 = Array.from({ length: 50 }, () =>
        waiterLock.acquireOrWait(key, { isDone: () => done }).then((o) => {
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
}

/** `calls` of `command` in `INFO commandstats` summed over `servers`. */
export async function sumCommandCalls(
  servers: ReadonlyArray<{ command(...args: Array<string | number>): Promise<unknown> }>,
  command: string,
): Promise<number> {
  let total = 0;
  for (const s of servers) total += commandCalls(String(await s.command('INFO', 'commandstats')), command);
  return total;
}
