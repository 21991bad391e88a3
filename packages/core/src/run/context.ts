/**
 * The explicit state of one cache instance, built once by `createCache()` and handed to every
 * step: environment, state directory, policy, the store and lock getters, the circuit breaker and
 * the event sink. Nothing here is shared between instances or kept at module level, so two caches
 * in one process (two tests, two tenants) never see each other's state.
 * NOTE (size): ~410 lines: the instance context and the per-call context (guard, warnings, budgets)
 * are two halves of one state machine and stay together.
 *
 * A call (`run()`, `lookup()`, …) adds a {@link CallContext}: the task, its key and policy, its
 * stats, its signal, and the warning/strict handling that turns cache trouble into events.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { describeLockUrl } from '@task-cache/lock';
import type { OciStore } from '@task-cache/oci';
import { openLock, openStore } from '../config/open.js';
import type { TransferProgress } from '../entry/types.js';
import { CacheConfigError, CacheRunError, CacheTimeoutError } from '../errors.js';
import type { CacheEvent, CacheWarningCode } from '../events/types.js';
import type { Explanation } from '../explain/diff.js';
import { createRunLog, type RunLog } from '../stats/log.js';
import { defaultCacheDir } from '../store/default-dir.js';
import type { LocalBounds } from '../tier/bounds.js';
import { createPruner, type Pruner } from '../tier/prune.js';
import { isTiered, tieredStore } from '../tier/tiered.js';
import { createSigner } from '../trust/keys.js';
import type { SigningPayload } from '../trust/payload.js';
import { detectUntrustedContext } from '../trust/untrusted-context.js';
import { type Breaker, createBreaker } from './breaker.js';
import { type EntryOps, entryOps } from './entries.js';
import {
  type CacheSettings,
  type ResolvedCacheLimits,
  type ResolvedPolicy,
  type ResolvedTimeouts,
  resolvePolicy,
} from './options.js';
import { countsAgainstStore, describe, isAbort, isUnreachable, storeTrouble } from './trouble.js';
import type { CacheLock, CachePolicy, MissReason, RunStats } from './types.js';

/** The state of one cache instance (see the module comment). */
export interface CacheContext {
  readonly env: Record<string, string | undefined>;
  readonly enabled: boolean;
  /** Root of the files the cache writes besides the store: `bases/`, `locks/`. */
  readonly stateDir: string;
  /** Directory of the remembered base entries (handed to the entry functions as `stateDir`). */
  readonly basesDir: string;
  /** The tag of the store URL: the key of every run when set. */
  readonly urlTag: string | undefined;
  /** The entry form a store URL's `?format=` asks for (`undefined`: `auto`). */
  readonly urlFormat: 'auto' | 'standard' | 'compat' | undefined;
  /** The lock key of the lock URL, if any. */
  readonly lockKey: string | undefined;
  /** Redacted lock location, for events. */
  readonly lockLocation: string;
  /** `lock: false`. */
  readonly noLock: boolean;
  /** The entry data plane. */
  readonly entries: EntryOps;
  /** Time budgets (the `timeouts` option, defaults filled in). */
  readonly timeouts: ResolvedTimeouts;
  /** Size and count caps (the `limits` option, defaults filled in). */
  readonly limits: ResolvedCacheLimits;
  /** Why this environment runs untrusted code (`readOnly: 'auto'` → read-only), if it does. */
  readonly untrustedContext: string | undefined;
  /** Signs saved entries (annotations of the manifest), when a signing key is configured. */
  readonly sign: ((payload: SigningPayload) => Record<string, string>) | undefined;
  /** Keys a restored entry must be signed with; empty: entries are not checked. */
  readonly trustedKeys: readonly KeyObject[];
  /** This instance's runs, also appended to `<stateDir>/stats/runs.jsonl`. */
  readonly runLog: RunLog;
  /** Bounds of the local store. */
  readonly bounds: LocalBounds;
  /** The background prune after a save (only for a local store core opened from a URL). */
  readonly pruner: Pruner;
  /** The store, opened on first use (a failed open is retried by the next call). */
  store(signal?: AbortSignal): Promise<OciStore>;
  /** How many `readScopes` there are. */
  readonly readScopeCount: number;
  /** Read scope `i`, opened on first use (a failed open is retried by the next call). */
  readScope(i: number, signal?: AbortSignal): Promise<OciStore>;
  /** The lock, opened on first use (a failed open is retried by the next call). */
  lock(): Promise<CacheLock>;
  /**
   * This instance's circuit breaker of `store`, with `policy`'s thresholds: one per store, so a
   * dead read scope does not make the run skip its own store (or the other way round).
   */
  breaker(policy: ResolvedPolicy, store: OciStore): Breaker;
  /** The cache's policy overridden by a call's (validated) overrides. */
  policy(override?: CachePolicy): ResolvedPolicy;
  /** Sends an event to `onEvent`; a throwing listener is ignored. */
  emit(event: CacheEvent): void;
  /**
   * Runs `fn` as a call of `task`: warnings of what the instance shares between calls (the two
   * tiers, the background prune) name the task of the call that caused them.
   */
  inTask<T>(task: string, fn: () => T): T;
  readonly closed: boolean;
  /** Closes what this instance opened (not the objects passed in). */
  close(): Promise<void>;
}

/**
 * Something opened on first use and kept; a failed open is forgotten, so the next use retries
 * (a registry that was down at the first run may be up at the next).
 */
function once<T>(): { get(open: () => Promise<T>): Promise<T>; current(): Promise<T> | undefined } {
  let pending: Promise<T> | undefined;
  return {
    get(open) {
      if (pending !== undefined) return pending;
      const opening = open();
      pending = opening;
      opening.catch(() => {
        if (pending === opening) pending = undefined;
      });
      return opening;
    },
    current: () => pending,
  };
}

/** Builds the context of one cache from its validated options. */
export function createCacheContext(settings: CacheSettings): CacheContext {
  const { env, onEvent, store, lock } = settings;
  const stateDir = settings.stateDir ?? defaultCacheDir(env);
  const lockUrl = 'url' in lock ? lock.url : undefined;
  const breakers = new WeakMap<OciStore, ReturnType<typeof createBreaker>>();
  const openedStore = once<OciStore>();
  const openedLock = once<CacheLock>();
  const openedScopes = settings.readScopes.map(() => once<OciStore>());
  // The run's store and every read scope open with the same environment, budgets and limits.
  const openUrl = (url: Parameters<typeof openStore>[0], signal?: AbortSignal): Promise<OciStore> =>
    openStore(url, {
      env,
      timeouts: settings.timeouts,
      limits: settings.limits,
      ...(signal ? { signal } : {}),
    }).then((r) => r.store);
  const untrustedContext = detectUntrustedContext(env);
  let closed = false;
  const runLog = createRunLog(stateDir);
  const localUrl = 'url' in store && (store.url.kind === 'default' || store.url.kind === 'oci-layout');
  // NOTE: the task of the call running in this async context, for the warnings of the shared
  // store (tiers) and the background prune, which know no task of their own.
  const currentTask = new AsyncLocalStorage<string>();
  const taskNow = () => currentTask.getStore() ?? '';
  const emit = (event: CacheEvent) => {
    if (!onEvent) return;
    try {
      onEvent(event);
    } catch {
      // A throwing listener must not break the build.
    }
  };
  // Two tiers only in front of a remote store: a local store is its own local tier.
  const tiers = localUrl ? undefined : settings.tiers;
  const openTiers = async (signal?: AbortSignal): Promise<OciStore> => {
    const remote = 'object' in store ? store.object : await openUrl(store.url, signal);
    let local: OciStore;
    try {
      local = await openUrl({ kind: 'default' }, signal);
    } catch (error) {
      if (!('object' in store)) await remote.close?.().catch(() => {});
      throw error;
    }
    return tieredStore(local, remote, {
      modes: tiers ?? {},
      onTrouble: (tier, operation, error) =>
        emit({
          type: 'warning',
          task: taskNow(),
          code: tier === 'remote' ? 'SAVE_FAILED' : 'RESTORE_FAILED',
          message: `${tier} tier: ${operation} failed: ${describe(error).message}`,
          ...(typeof (error as { code?: unknown })?.code === 'string'
            ? { causeCode: (error as { code: string }).code }
            : {}),
        }),
    });
  };
  const pruner = createPruner(localUrl || tiers !== undefined, stateDir, settings.bounds, (error) =>
    emit({
      type: 'warning',
      task: taskNow(),
      code: 'PRUNE_FAILED',
      message: `background prune failed: ${describe(error).message}`,
      ...(typeof (error as { code?: unknown })?.code === 'string'
        ? { causeCode: (error as { code: string }).code }
        : {}),
    }),
  );

  return {
    env,
    enabled: settings.enabled,
    stateDir,
    basesDir: join(stateDir, 'bases'),
    urlTag: 'url' in store && 'tag' in store.url ? store.url.tag : undefined,
    urlFormat: 'url' in store && store.url.kind === 'oci' ? store.url.format : undefined,
    lockKey: lockUrl?.kind === 'redis' ? lockUrl.key : undefined,
    lockLocation: lockUrl?.kind === 'redis' ? describeLockUrl(lockUrl) : 'local',
    noLock: 'none' in lock,
    entries: entryOps,
    timeouts: settings.timeouts,
    limits: settings.limits,
    untrustedContext,
    sign: settings.signingKey ? createSigner(settings.signingKey) : undefined,
    trustedKeys: settings.trustedKeys,
    runLog,
    bounds: settings.bounds,
    pruner,
    store(signal) {
      if (tiers) return openedStore.get(() => openTiers(signal));
      if ('object' in store) return Promise.resolve(store.object);
      const url = store.url;
      return openedStore.get(() => openUrl(url, signal));
    },
    readScopeCount: settings.readScopes.length,
    readScope(i, signal) {
      const setting = settings.readScopes[i];
      const opened = openedScopes[i];
      if (setting === undefined || opened === undefined)
        return Promise.reject(new RangeError(`no read scope ${i}`));
      if ('object' in setting) return Promise.resolve(setting.object);
      const url = setting.url;
      return opened.get(() => openUrl(url, signal));
    },
    lock() {
      if ('object' in lock) return Promise.resolve(lock.object);
      if ('none' in lock) return Promise.reject(new Error('no lock configured'));
      const url = lock.url;
      return openedLock.get(() => openLock(url, { env, stateDir }).then((r) => r.lock));
    },
    breaker(policy, s) {
      let state = breakers.get(s);
      if (state === undefined) {
        state = createBreaker();
        breakers.set(s, state);
      }
      return state.view(policy.circuitBreakerThreshold, policy.circuitBreakerCooldownMs);
    },
    policy: (override) => resolvePolicy(settings.policy, override, untrustedContext),
    emit,
    inTask: (task, fn) => currentTask.run(task, fn),
    get closed() {
      return closed;
    },
    async close() {
      if (closed) return;
      closed = true;
      // A background prune finishes first: it uses the store.
      await pruner.idle();
      const tasks: Promise<unknown>[] = [runLog.flushed()];
      const s = openedStore.current();
      const l = openedLock.current();
      // Two tiers: the remote passed in stays open (only what this instance opened is closed).
      const closeStore = (x: OciStore) =>
        tiers && 'object' in store && isTiered(x) ? x.local.close?.() : x.close?.();
      if (s) tasks.push(s.then(closeStore).catch(() => {}));
      if (l) tasks.push(l.then((x) => x.close?.()).catch(() => {}));
      for (const o of openedScopes) {
        const c = o.current();
        if (c) tasks.push(c.then((x) => x.close?.()).catch(() => {}));
      }
      await Promise.all(tasks);
    },
  };
}

/** Fresh stats of one call. */
export function newStats(): RunStats {
  return {
    checksumMs: 0,
    lookupMs: 0,
    lockWaitMs: 0,
    buildMs: 0,
    saveMs: 0,
    restoreMs: 0,
    totalMs: 0,
    chunksPushed: 0,
    chunksTotal: 0,
    bytesPushed: 0,
    chunksFetched: 0,
    bytesFetched: 0,
    files: 0,
    warnings: 0,
  };
}

/** One call of a cache: its task, key, policy, stats and signal, over the cache's context. */
export interface CallContext {
  readonly cache: CacheContext;
  readonly task: string;
  readonly key: string;
  readonly policy: ResolvedPolicy;
  readonly stats: RunStats;
  readonly signal: AbortSignal | undefined;
  /** Why the call missed, and its explanation, as the steps found out (filled in as it runs). */
  readonly outcome: CallOutcome;
  /** A `warning` event (strict mode: throws {@link CacheRunError} instead of returning). */
  warn(code: CacheWarningCode, message: string, cause?: unknown): void;
  /**
   * Runs a store operation within `budgetMs` (`fn` gets the signal to pass on: the call's,
   * plus the budget): trouble → warning + `undefined` (strict: throws), an open breaker →
   * `CIRCUIT_OPEN` warning + `undefined` without calling it. After the store timed out or was
   * unreachable once in this call, later operations are skipped at once (their cause was
   * already reported). An abort of the call's signal propagates.
   */
  guard<R>(
    store: OciStore,
    code: CacheWarningCode,
    what: string,
    fn: (signal: AbortSignal | undefined) => Promise<R>,
    budgetMs?: number,
  ): Promise<R | undefined>;
  /** `true` once an operation of this call on `store` timed out or found it unreachable. */
  storeDown(store: OciStore): boolean;
  /** `true` (with a `CIRCUIT_OPEN` warning) when the breaker skips the store for `what`. */
  circuitOpen(store: OciStore, what: string): boolean;
  /** Forwards transfer progress as `progress` events. */
  progress(p: TransferProgress): void;
  /** The store; failure to open it → `LOOKUP_FAILED` warning + `undefined` (strict: throws). */
  openStore(): Promise<OciStore | undefined>;
}

/** What the steps of a call found out about its miss or hit. */
export interface CallOutcome {
  missReason?: MissReason;
  explanation?: Explanation;
  /** On a restore: the entry's recorded build duration minus the restore's time. */
  timeSavedMs?: number;
  /** On a restore through two tiers: the tier that served the entry. */
  tier?: 'local' | 'remote';
}

/** The context of one call. */
export function createCallContext(
  cache: CacheContext,
  call: { task: string; key: string; policy: ResolvedPolicy; stats: RunStats; signal?: AbortSignal },
): CallContext {
  const { task, key, policy, stats, signal } = call;
  // NOTE (issue 16): one warning per cause per call; a dead registry printed `lookup failed`
  // twice (the lookup before the lock and the one after it).
  const warned = new Set<string>();
  // Per store: the run's own store and each read scope fail (and are skipped) on their own.
  const down = new WeakSet<OciStore>();
  const ctx: CallContext = {
    cache,
    task,
    key,
    policy,
    stats,
    signal,
    storeDown: (store) => down.has(store),
    outcome: {},
    warn(code, message, cause) {
      const causeCode = (cause as { code?: unknown } | undefined)?.code;
      const id = code === 'CIRCUIT_OPEN' ? code : `${code}\n${message}`;
      if (warned.has(id)) {
        if (policy.strict) throw new CacheRunError(code, `task "${task}": ${message}`, { cause });
        return;
      }
      warned.add(id);
      stats.warnings += 1;
      cache.emit({
        type: 'warning',
        task,
        key,
        code,
        message,
        ...(typeof causeCode === 'string' ? { causeCode } : {}),
      });
      if (policy.strict) throw new CacheRunError(code, `task "${task}": ${message}`, { cause });
    },
    circuitOpen(store, what) {
      if (!cache.breaker(policy, store).isOpen()) return false;
      // This call already reported why (it opened the breaker): skip without a second warning.
      if (down.has(store)) return true;
      ctx.warn(
        'CIRCUIT_OPEN',
        `${what} skipped: ${store.location} failed repeatedly, skipping it for a while`,
      );
      return true;
    },
    async guard(store, code, what, fn, budgetMs) {
      if (ctx.circuitOpen(store, what)) return undefined;
      if (down.has(store)) return undefined;
      const breaker = cache.breaker(policy, store);
      const budget = budgetMs === undefined ? undefined : new AbortController();
      const timer =
        budget &&
        setTimeout(() => {
          budget.abort(
            new CacheTimeoutError(`${what} took longer than its budget of ${budgetMs} ms`, {
              timeoutMs: budgetMs as number,
            }),
          );
        }, budgetMs);
      timer?.unref?.();
      const opSignal = budget ? (signal ? AbortSignal.any([signal, budget.signal]) : budget.signal) : signal;
      try {
        const r = await fn(opSignal);
        breaker.success();
        return r;
      } catch (error) {
        // The budget's abort is trouble, whatever shape the aborted operation gave it; the
        // call's own abort propagates.
        const timedOut = budget?.signal.aborted === true && signal?.aborted !== true;
        if (!timedOut) {
          if (isAbort(error, signal)) throw error;
          signal?.throwIfAborted();
        }
        const failure: unknown = timedOut ? budget?.signal.reason : error;
        if (countsAgainstStore(failure)) breaker.failure();
        if (timedOut || isUnreachable(failure)) {
          // NOTE (issue 16): a store that did not answer costs its wait once per process, not
          // once per run until the threshold: the next runs skip it at once.
          down.add(store);
          breaker.trip();
        }
        ctx.warn(
          storeTrouble(failure, code),
          `${what} failed (${store.location}): ${describe(failure).message}`,
          failure,
        );
        return undefined;
      } finally {
        if (timer) clearTimeout(timer);
      }
    },
    progress(p) {
      cache.emit({
        type: 'progress',
        task,
        key,
        phase: p.phase,
        chunksDone: p.chunksDone,
        ...(p.chunksTotal === undefined ? {} : { chunksTotal: p.chunksTotal }),
        bytesDone: p.bytesDone,
        bytesProcessed: p.bytesProcessed,
      });
    },
    async openStore() {
      try {
        return await cache.store(signal);
      } catch (error) {
        if (isAbort(error, signal)) throw error;
        if (error instanceof CacheConfigError) throw error;
        ctx.warn('LOOKUP_FAILED', `cannot open the store: ${describe(error).message}`, error);
        return undefined;
      }
    },
  };
  return ctx;
}
