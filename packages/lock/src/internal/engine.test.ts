import { describe, expect, it } from 'vitest';
import { LeaseLostError, LockConfigError, LockUnavailableError } from '../errors.js';
import type { ReleaseOutcome } from '../types.js';
import { type AttemptResult, createEngineLock, type LockBackend } from './engine.js';

/** In-memory backend with call counters and switchable failures (unit tests only). */
function fakeBackend() {
  const state = {
    holder: undefined as string | undefined,
    fence: 0,
    calls: { acquire: 0, renew: 0, release: 0 },
    renewFails: false,
    renewSaysStolen: false,
    acquireError: undefined as Error | undefined,
    releaseError: undefined as Error | undefined,
    pttl: undefined as number | undefined,
    listeners: new Set<(o: ReleaseOutcome | undefined) => void>(),
    reconnected: new Set<() => void>(),
  };
  const backend: LockBackend = {
    async tryAcquire(_key, token): Promise<AttemptResult> {
      state.calls.acquire++;
      if (state.acquireError) throw state.acquireError;
      if (state.holder !== undefined) return { ok: false, pttlMs: state.pttl };
      state.holder = token;
      return { ok: true, fence: ++state.fence };
    },
    async renew(_key, token) {
      state.calls.renew++;
      if (state.renewFails) throw new LockUnavailableError('timeout', 'renew timed out');
      return !state.renewSaysStolen && state.holder === token;
    },
    async release(_key, token, outcome) {
      state.calls.release++;
      if (state.releaseError) throw state.releaseError;
      const deleted = state.holder === token;
      if (deleted) state.holder = undefined;
      if (deleted || outcome === 'built') for (const l of [...state.listeners]) l(outcome);
      return deleted;
    },
    async subscribe(_key, listener) {
      state.listeners.add(listener);
      return () => state.listeners.delete(listener);
    },
    onReconnect(listener) {
      state.reconnected.add(listener);
      return () => state.reconnected.delete(listener);
    },
    async close() {},
  };
  return { backend, state };
}

const lostReason = (signal: AbortSignal) =>
  new Promise<LeaseLostError>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason)));

describe('engine lock', () => {
  it('acquires with a fence, renews every ttl/3, releases once', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 300 });
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    expect(outcome.lease.fence).toBe(1);
    await new Promise((r) => setTimeout(r, 800));
    expect(state.calls.renew).toBeGreaterThanOrEqual(3);
    expect(outcome.lease.isValid()).toBe(true);
    expect(await outcome.lease.release('built')).toBe(true);
    expect(outcome.lease.isValid()).toBe(false);
    expect(await outcome.lease.release('built')).toBe(false);
    expect(state.calls.release).toBe(1);
    const renewsAfterRelease = state.calls.renew;
    await new Promise((r) => setTimeout(r, 100));
    expect(state.calls.renew).toBe(renewsAfterRelease);
    expect(outcome.lease.signal.aborted).toBe(false);
  });

  it('lease lost (expired) when renewals keep failing until the local deadline', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 60 });
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    state.renewFails = true;
    const reason = await lostReason(outcome.lease.signal);
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect(reason.reason).toBe('expired');
    expect(outcome.lease.isValid()).toBe(false);
  });

  it('lease lost (stolen) as soon as the token no longer matches', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 3_000 });
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    state.renewSaysStolen = true;
    const reason = await lostReason(outcome.lease.signal); // first renewal after 1 s, well before the TTL
    expect(reason.reason).toBe('stolen');
    expect(outcome.lease.isValid()).toBe(false);
  });

  it('release never throws for backend trouble', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 1_000 });
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    state.releaseError = new LockUnavailableError('connection', 'down');
    expect(await outcome.lease.release('failed')).toBe(false);
    await expect(outcome.lease.release('nope' as ReleaseOutcome)).rejects.toThrow(LockConfigError);
    await lock.close();
  });

  it('a built notice ends the wait with peer-finished (no isDone), isDone is asked first', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 10_000, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const held = await lock.acquireOrWait('k');
    if (held.kind !== 'acquired') throw new Error(held.kind);
    const waiter = lock.acquireOrWait('k');
    let done = false;
    const asking = lock.acquireOrWait('k', { isDone: () => done });
    await new Promise((r) => setTimeout(r, 50));
    const attempts = state.calls.acquire;
    done = true;
    await held.lease.release('built');
    // The backoff is 60 s: only the notice can end these waits in time.
    expect(await waiter).toEqual({ kind: 'peer-finished' });
    expect(await asking).toEqual({ kind: 'peer-finished' });
    expect(state.calls.acquire).toBe(attempts);
  });

  it('after a failed notice exactly one waiter acquires', async () => {
    const { backend } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 10_000, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const held = await lock.acquireOrWait('k');
    if (held.kind !== 'acquired') throw new Error(held.kind);
    const controller = new AbortController();
    const waiters = Array.from({ length: 5 }, () =>
      lock.acquireOrWait('k', { isDone: () => false, signal: controller.signal }).catch((e: unknown) => e),
    );
    await new Promise((r) => setTimeout(r, 50));
    await held.lease.release('failed');
    await new Promise((r) => setTimeout(r, 50));
    controller.abort(new Error('test over'));
    const results = await Promise.all(waiters);
    const acquired = results.filter((r) => (r as { kind?: string }).kind === 'acquired');
    expect(acquired).toHaveLength(1);
    expect(results.filter((r) => r instanceof Error && r.message === 'test over')).toHaveLength(4);
    await lock.close();
  });

  it('the sleep is capped by the holder PTTL', async () => {
    const { backend, state } = fakeBackend();
    state.holder = 'someone';
    state.pttl = 20;
    const lock = createEngineLock(backend, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    setTimeout(() => {
      state.holder = undefined; // expired, no notice
    }, 10);
    const outcome = await lock.acquireOrWait('k', { signal: AbortSignal.timeout(10_000) });
    expect(outcome.kind).toBe('acquired');
    await lock.close();
  });

  it('times out, honours abort, reports unavailable or throws on request, rethrows config errors', async () => {
    const { backend, state } = fakeBackend();
    state.holder = 'someone';
    const lock = createEngineLock(backend, { backoff: { initialMs: 5, maxMs: 10 } });
    expect(await lock.acquireOrWait('k', { waitTimeoutMs: 50 })).toEqual({ kind: 'timed-out' });
    const reason = new Error('stop');
    await expect(lock.acquireOrWait('k', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const controller = new AbortController();
    const pending = lock.acquireOrWait('k', { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 30);
    await expect(pending).rejects.toBe(reason);
    await expect(
      lock.acquireOrWait('k', {
        isDone: () => {
          throw new Error('cache broken');
        },
      }),
    ).rejects.toThrow('cache broken');

    state.acquireError = new LockUnavailableError('oom', 'OOM command not allowed');
    const outcome = await lock.acquireOrWait('k');
    expect(outcome.kind).toBe('unavailable');
    expect(outcome.kind === 'unavailable' && outcome.error.reason).toBe('oom');
    await expect(lock.acquireOrWait('k', { onUnavailable: 'throw' })).rejects.toBeInstanceOf(
      LockUnavailableError,
    );
    state.acquireError = new LockConfigError('permission', 'NOPERM');
    await expect(lock.acquireOrWait('k')).rejects.toBeInstanceOf(LockConfigError);
  });

  it('validates options and keys with errors naming the field', async () => {
    const { backend } = fakeBackend();
    expect(() => createEngineLock(backend, { ttlMs: 0 })).toThrow('option ttlMs must be an integer >= 3');
    expect(() => createEngineLock(backend, { backoff: { initialMs: 10, maxMs: 5 } })).toThrow(
      'backoff.maxMs must be >= backoff.initialMs',
    );
    const lock = createEngineLock(backend);
    await expect(lock.acquireOrWait('')).rejects.toThrow('lock key must be a non-empty string');
    await expect(lock.acquireOrWait('k', { waitTimeoutMs: -1 })).rejects.toThrow('option waitTimeoutMs');
    await expect(lock.acquireOrWait('k', { onUnavailable: 'x' as 'throw' })).rejects.toThrow('onUnavailable');
  });

  it('close loses held leases (reason closed) and gives the keys back', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend);
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    await lock.close();
    await lock.close();
    expect((outcome.lease.signal.reason as LeaseLostError).reason).toBe('closed');
    expect(state.holder).toBeUndefined();
    await expect(lock.acquireOrWait('k')).rejects.toThrow('lock is closed');
  });

  it('issue 18: after a reconnect every held lease is re-validated at once; a lease whose token is gone is lost (stolen) before its next scheduled renewal', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 30_000 }); // next scheduled renewal in 10 s
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    const lost = lostReason(outcome.lease.signal);
    // The server lost the key (a restart, a failover to a replica that never had it).
    state.holder = undefined;
    const renewsBefore = state.calls.renew;
    for (const l of state.reconnected) l();
    const t0 = performance.now();
    expect((await lost).reason).toBe('stolen');
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(state.calls.renew).toBe(renewsBefore + 1);
    await lock.close();
    expect(state.reconnected.size).toBe(0);
  });

  it('issue 18: a reconnect keeps a lease the server still has (the renewal succeeds)', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { ttlMs: 30_000 });
    const outcome = await lock.acquireOrWait('k');
    if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
    for (const l of state.reconnected) l();
    await new Promise((r) => setTimeout(r, 50));
    expect(state.calls.renew).toBe(1);
    expect(outcome.lease.isValid()).toBe(true);
    await lock.close();
  });

  it('issue 18: a notice "maybe missed" (undefined) makes a waiter attempt at once without ending its wait', async () => {
    const { backend, state } = fakeBackend();
    const lock = createEngineLock(backend, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const held = await lock.acquireOrWait('k');
    if (held.kind !== 'acquired') throw new Error(held.kind);
    const waiter = lock.acquireOrWait('k', { isDone: () => false });
    await new Promise((r) => setTimeout(r, 50));
    const attempts = state.calls.acquire;
    state.holder = undefined; // freed without a notice (the notice was lost with the subscription)
    for (const l of state.listeners) l(undefined);
    const outcome = await waiter;
    expect(outcome.kind).toBe('acquired');
    expect(state.calls.acquire).toBe(attempts + 1);
    await lock.close();
  });

  it('issue 16: close() wakes a waiter sleeping in its backoff at once (it rejects: the lock is closed)', async () => {
    const { backend } = fakeBackend();
    const lock = createEngineLock(backend, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const other = createEngineLock(backend);
    const held = await other.acquireOrWait('k');
    if (held.kind !== 'acquired') throw new Error(held.kind);
    const waiter = lock.acquireOrWait('k', { isDone: () => false });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    await lock.close();
    await expect(waiter).rejects.toBeInstanceOf(LockConfigError);
    expect(performance.now() - t0).toBeLessThan(1_000);
    await other.close();
  });

  it('issue 16: an abort during a slow attempt (a connect, a frozen server) rejects at once; an attempt that lands later is given back', async () => {
    const { backend, state } = fakeBackend();
    let land: (() => void) | undefined;
    const slow: LockBackend = {
      ...backend,
      tryAcquire: (key, token, ttl) =>
        new Promise((resolve) => {
          land = () => resolve(backend.tryAcquire(key, token, ttl));
        }),
    };
    const lock = createEngineLock(slow);
    const controller = new AbortController();
    const outcome = lock.acquireOrWait('k', { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    controller.abort(new Error('stop'));
    await expect(outcome).rejects.toThrow('stop');
    expect(performance.now() - t0).toBeLessThan(100);
    land?.(); // the SET NX lands after the abort…
    await new Promise((r) => setTimeout(r, 20));
    expect(state.calls.release).toBe(1); // …and is given back
    expect(state.holder).toBeUndefined();
    await lock.close();
  });
});
