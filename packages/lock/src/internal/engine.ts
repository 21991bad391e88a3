import { randomBytes } from 'node:crypto';
import {
  LeaseLostError,
  type LeaseLostReason,
  LockConfigError,
  LockError,
  LockUnavailableError,
} from '../errors.js';
import type { AcquireOptions, AcquireOutcome, Lease, Lock, LockOptions, ReleaseOutcome } from '../types.js';
import { now, sleep } from './sleep.js';

/** Result of one acquire attempt. */
export type AttemptResult = { ok: true; fence: number } | { ok: false; pttlMs: number | undefined };

/** The narrow capabilities a lock backend provides; the engine adds leases, renewal and the wait loop. */
export interface LockBackend {
  /** One `SET NX PX` style attempt. Throws a `LockError` (config / unavailable) on backend trouble. */
  tryAcquire(key: string, token: string, ttlMs: number): Promise<AttemptResult>;
  /** Compare-then-extend. `false` when the key no longer holds `token`. Throws on backend trouble. */
  renew(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Compare-and-delete, then notify waiters. `true` if deleted. May throw (the engine swallows it). */
  release(key: string, token: string, outcome: ReleaseOutcome): Promise<boolean>;
  /**
   * Optional release notices; resolves once subscribed. Failures degrade to polling. The listener gets
   * `undefined` when notices may have been missed (the subscription was restored after a reconnect): the
   * waiter then attempts at once.
   */
  subscribe?(key: string, listener: (outcome: ReleaseOutcome | undefined) => void): Promise<() => void>;
  /**
   * Optional: `listener` is called after every reconnect of the backend (a server restart, a failover);
   * the engine then re-validates every held lease at once. Returns the function that removes it.
   */
  onReconnect?(listener: () => void): () => void;
  /** Frees backend resources. */
  close(): Promise<void>;
}

export const DEFAULT_TTL_MS = 30_000;
export const DEFAULT_WAIT_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_BACKOFF_INITIAL_MS = 100;
export const DEFAULT_BACKOFF_MAX_MS = 2_000;

export function positiveInt(value: unknown, field: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new LockConfigError('option', `option ${field} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') {
    throw new LockConfigError('option', 'lock key must be a non-empty string');
  }
}

interface EngineLease extends Lease {
  lose(reason: LeaseLostReason, cause?: unknown): void;
  /** Renew now (after a reconnect): a lease whose token is gone is lost at once, not at the next renewal. */
  revalidate(): void;
  /** Lose the lease (reason `closed`) and give the key back so waiters need not wait for the TTL. */
  abandon(): Promise<void>;
}

/** Builds a {@link Lock} on top of a {@link LockBackend}. */
export function createEngineLock(
  backend: LockBackend,
  options: LockOptions & { key?: string | undefined } = {},
): Lock {
  const ttlMs = positiveInt(options.ttlMs, 'ttlMs', DEFAULT_TTL_MS, 3);
  const initialMs = positiveInt(options.backoff?.initialMs, 'backoff.initialMs', DEFAULT_BACKOFF_INITIAL_MS);
  const maxMs = positiveInt(options.backoff?.maxMs, 'backoff.maxMs', DEFAULT_BACKOFF_MAX_MS);
  if (maxMs < initialMs)
    throw new LockConfigError('option', 'option backoff.maxMs must be >= backoff.initialMs');
  // NOTE: Redlock's drift allowance: the local deadline ends a little before the server-side TTL.
  const driftMs = Math.floor(ttlMs * 0.01) + 2;
  const leases = new Set<EngineLease>();
  /** Wakes the sleeping waiters: on close they must not sleep out their backoff. */
  const sleepers = new Set<() => void>();
  let closed = false;
  // NOTE: the hook is installed lazily (first lease), so that option validation with a dummy backend
  // touches nothing.
  let stopReconnectHook: (() => void) | undefined;
  const hookReconnects = () => {
    if (stopReconnectHook || closed) return;
    stopReconnectHook = backend.onReconnect?.(() => {
      for (const lease of [...leases]) lease.revalidate();
    });
  };

  const makeLease = (key: string, token: string, fence: number, startedAt: number): EngineLease => {
    const controller = new AbortController();
    let state: 'held' | 'lost' | 'released' = 'held';
    let deadline = startedAt + ttlMs - driftMs;
    let renewTimer: NodeJS.Timeout | undefined;
    let deadlineTimer: NodeJS.Timeout | undefined;
    let renewing = false;

    const stopTimers = () => {
      clearTimeout(renewTimer);
      clearTimeout(deadlineTimer);
      leases.delete(lease);
    };
    const armDeadline = () => {
      clearTimeout(deadlineTimer);
      deadlineTimer = setTimeout(() => lease.lose('expired'), Math.max(0, deadline - now()));
      deadlineTimer.unref();
    };
    const scheduleRenew = () => {
      renewTimer = setTimeout(renew, Math.floor(ttlMs / 3));
      renewTimer.unref();
    };
    const renew = async () => {
      if (state !== 'held' || renewing) return;
      renewing = true;
      const t0 = now();
      try {
        const ok = await backend.renew(key, token, ttlMs);
        if (state !== 'held') return;
        if (!ok) {
          lease.lose('stolen');
          return;
        }
        // A renewal that lands after the local deadline cannot resurrect the lease (it was aborted).
        if (t0 + ttlMs - driftMs > deadline) deadline = t0 + ttlMs - driftMs;
        armDeadline();
      } catch {
        // Transient: keep trying every ttl/3; the deadline timer declares the lease lost if none succeeds.
      } finally {
        renewing = false;
        if (state === 'held') scheduleRenew();
      }
    };

    const lease: EngineLease = {
      key,
      fence,
      signal: controller.signal,
      isValid: () => state === 'held' && now() < deadline,
      revalidate() {
        if (state !== 'held' || renewing) return;
        clearTimeout(renewTimer);
        void renew();
      },
      lose(reason, cause) {
        if (state !== 'held') return;
        state = 'lost';
        stopTimers();
        controller.abort(new LeaseLostError(reason, key, fence, cause === undefined ? undefined : { cause }));
      },
      async abandon() {
        if (state !== 'held') return;
        lease.lose('closed');
        await backend.release(key, token, 'failed').catch(() => false);
      },
      async release(outcome: ReleaseOutcome = 'built') {
        if (outcome !== 'built' && outcome !== 'failed') {
          throw new LockConfigError(
            'option',
            `release outcome must be 'built' or 'failed', got ${String(outcome)}`,
          );
        }
        if (state === 'released') return false;
        state = 'released';
        stopTimers();
        try {
          return await backend.release(key, token, outcome);
        } catch {
          // NOTE: never throw for backend trouble: the key expires on its own within the TTL.
          return false;
        }
      },
    };
    leases.add(lease);
    hookReconnects();
    armDeadline();
    scheduleRenew();
    return lease;
  };

  const acquireOrWait = async (key: string, opts: AcquireOptions = {}): Promise<AcquireOutcome> => {
    validateKey(key);
    const signal = opts.signal;
    signal?.throwIfAborted();
    if (closed) throw new LockConfigError('option', 'lock is closed');
    const waitTimeoutMs = positiveInt(opts.waitTimeoutMs, 'waitTimeoutMs', DEFAULT_WAIT_TIMEOUT_MS, 0);
    const onUnavailable = opts.onUnavailable ?? 'proceed';
    if (onUnavailable !== 'proceed' && onUnavailable !== 'throw') {
      throw new LockConfigError('option', `option onUnavailable must be 'proceed' or 'throw'`);
    }
    const isDoneSignal = signal ?? new AbortController().signal;
    const waitDeadline = now() + waitTimeoutMs;
    let notice: ReleaseOutcome | undefined;
    /** Set when something happened since the last attempt that is worth an attempt without sleeping. */
    let poke = false;
    let wake: (() => void) | undefined;
    let finished = false;
    let attemptsStarted = 0;
    let unsubscribe: (() => void) | undefined;
    // NOTE: the subscription is started first but not awaited before the first attempt, so a frozen
    // subscriber connection cannot stretch a call beyond one command timeout. Once it is active the
    // waiter attempts again at once, which catches a release that happened before the subscription — the
    // guarantee "subscribe first" is after, without its latency.
    backend
      .subscribe?.(key, (outcome) => {
        if (outcome !== undefined && notice !== 'built') notice = outcome;
        poke = true;
        wake?.();
      })
      .then(
        (off) => {
          if (finished) {
            off();
            return;
          }
          unsubscribe = off;
          // An attempt made before the subscription was active may have missed a release notice.
          if (attemptsStarted > 0) {
            poke = true;
            wake?.();
          }
        },
        () => undefined, // polling alone still works
      );
    const unavailable = (error: LockUnavailableError): AcquireOutcome => {
      if (onUnavailable === 'throw') throw error;
      return { kind: 'unavailable', error };
    };
    try {
      let attempt = 0;
      let firstFailureAt: number | undefined;
      for (;;) {
        signal?.throwIfAborted();
        const heard = notice;
        notice = undefined;
        poke = false;
        if (opts.isDone) {
          if (await opts.isDone(isDoneSignal)) return { kind: 'peer-finished' };
        } else if (heard === 'built') {
          return { kind: 'peer-finished' };
        }
        signal?.throwIfAborted();
        if (closed) throw new LockConfigError('option', 'lock is closed');
        const token = randomBytes(16).toString('hex');
        attemptsStarted++;
        const t0 = now();
        let result: AttemptResult | undefined;
        try {
          const attempt = backend.tryAcquire(key, token, ttlMs);
          result = await abortable(attempt, signal, () => {
            // Aborted while the attempt is in flight (a slow connect, a frozen server): if it still
            // lands, give the key back at once instead of leaving it held for a TTL.
            attempt.then(
              (late) => (late.ok ? backend.release(key, token, 'failed') : undefined),
              () => undefined,
            );
          });
          firstFailureAt = undefined;
        } catch (error) {
          if (signal?.aborted && error === signal.reason) throw error;
          const err = toLockError(error);
          if (!(err instanceof LockUnavailableError)) throw err;
          // NOTE: the first attempt fails fast (caller proceeds without the lock). A waiter that already
          // reached the backend tolerates transient connection trouble for one TTL: the holder's lease
          // cannot outlive that either, so waiting longer would be pointless.
          const transient = err.reason === 'connection' || err.reason === 'timeout' || err.reason === 'io';
          if (attempt === 0 || !transient) return unavailable(err);
          firstFailureAt ??= now();
          if (now() - firstFailureAt >= ttlMs) return unavailable(err);
        }
        if (result?.ok) {
          if (closed) {
            await backend.release(key, token, 'failed').catch(() => undefined);
            throw new LockConfigError('option', 'lock is closed');
          }
          return { kind: 'acquired', lease: makeLease(key, token, result.fence, t0) };
        }
        const remaining = waitDeadline - now();
        if (remaining <= 0) return { kind: 'timed-out' };
        const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
        attempt++;
        // Equal jitter: never 0 (no polling storms), never in lockstep with the other waiters.
        let delay = cap / 2 + Math.random() * (cap / 2);
        const pttl = result?.pttlMs;
        if (pttl !== undefined && pttl >= 0) delay = Math.min(delay, pttl + 5);
        delay = Math.min(delay, remaining);
        if (!poke) {
          let myWake: (() => void) | undefined;
          try {
            await sleep(delay, signal, (w) => {
              wake = w;
              myWake = w;
              sleepers.add(w);
            });
          } finally {
            if (myWake) sleepers.delete(myWake);
            wake = undefined;
          }
          if (closed) throw new LockConfigError('option', 'lock is closed');
        }
        if (now() >= waitDeadline && !poke) {
          if (opts.isDone && (await opts.isDone(isDoneSignal))) return { kind: 'peer-finished' };
          return { kind: 'timed-out' };
        }
      }
    } finally {
      finished = true;
      unsubscribe?.();
    }
  };

  return {
    key: options.key,
    acquireOrWait,
    async close() {
      if (closed) return;
      closed = true;
      stopReconnectHook?.();
      for (const w of [...sleepers]) w();
      await Promise.all([...leases].map((lease) => lease.abandon()));
      try {
        await backend.close();
      } catch {
        // close never throws
      }
    },
  };
}

/**
 * `promise`, or a rejection with `signal.reason` as soon as `signal` aborts (then `onAbandon` is called
 * once, to clean up after the promise that is left running).
 */
function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbandon: () => void,
): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      onAbandon();
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function toLockError(error: unknown): LockError {
  if (error instanceof LockError) return error;
  return new LockUnavailableError('connection', `lock backend failed: ${describe(error)}`, { cause: error });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
