import { classifyRedisFailure, describeLockUrl, LockUnavailableError } from '@task-cache/lock';
import { type OciStore, redactUrls, StoreLimitError } from '@task-cache/oci';
import { CacheConfigError, CacheRunError } from '../config/errors.js';
import { type LockUrl, parseLockOption } from '../config/lock-url.js';
import { openLock, openStore } from '../config/open.js';
import { parseStoreUrl, redactUrl, type StoreUrl } from '../config/urls.js';
import type { RestoreEntryResult, SaveEntryResult, TransferProgress } from '../entry/types.js';
import { EntryError, TaskCacheError } from '../errors.js';
import type { CacheEvent, CacheWarningCode } from '../events/types.js';
import { type ChecksumInputs, checksum, checksumDetailed, type SourceDigest } from '../key/checksum.js';
import { defaultKey, urlsafe, validateKey } from '../key/urlsafe.js';
import { type Breaker, breakerFor } from './breaker.js';
import { type EntryOps, entryOps } from './entries.js';
import { missingOutputs } from './outputs.js';
import type {
  BuildFunction,
  CacheLease,
  CacheLock,
  CacheOptions,
  CachePolicy,
  NotSavedReason,
  RunOptions,
  RunResult,
  RunStats,
} from './types.js';

/** Options that identify a task's key (see {@link Cache.key}). */
export interface KeyOptions extends Omit<ChecksumInputs, 'dir' | 'sources' | 'signal'> {
  /** Task name (the `.TASK` of the Taskfile). */
  task: string;
  /** Task directory. */
  dir: string;
  /** Globs of the inputs. */
  sources: readonly string[];
  /** Use this key (must be a valid tag). @default tag of the store URL, else `<urlsafe(task)>-<checksum>` */
  key?: string;
  /** Per-call policy overrides. */
  policy?: CachePolicy;
  signal?: AbortSignal;
}

/** Options of {@link Cache.restore} and {@link Cache.save}. */
export interface StepOptions extends KeyOptions {
  /** Globs of the outputs. */
  generates: readonly string[];
}

/** A configured cache (see {@link createCache}). */
export interface Cache {
  /**
   * Runs a task through the cache: key → lookup → restore on a hit; on a miss lock → build →
   * save → release. Cache trouble becomes a `warning` event (unless `strict`); a failing build
   * rejects with the build's own error, unchanged, and releases the lock with `failed`.
   */
  run<T>(options: RunOptions, build: BuildFunction<T>): Promise<RunResult<T>>;
  /** The key `run()` would use for these options. */
  key(options: KeyOptions): Promise<string>;
  /** `.CHECKSUM` of the inputs (see the standalone {@link checksum}). */
  checksum(inputs: ChecksumInputs): Promise<string>;
  /** See the standalone {@link urlsafe}. */
  urlsafe(value: string): string;
  /** Whether the store has a complete entry for the task's key. Trouble → warning and `hit: false`. */
  lookup(options: KeyOptions): Promise<{ key: string; hit: boolean }>;
  /** Restores the task's outputs; `undefined` on a miss or (with a warning) on cache trouble. */
  restore(options: StepOptions): Promise<RestoreEntryResult | undefined>;
  /** Saves the task's outputs; `undefined` when not saved (read-only, outputs missing, trouble). */
  save(options: StepOptions): Promise<SaveEntryResult | undefined>;
  /** Closes the store and the lock this cache opened (not the ones passed in as objects). */
  close(): Promise<void>;
}

const DEFAULTS: Required<Omit<CachePolicy, 'shouldRestore' | 'shouldSave'>> = {
  readOnly: false,
  force: false,
  maxEntrySize: Number.POSITIVE_INFINITY,
  lockWaitTimeoutMs: 600_000,
  concurrency: 8,
  compressionLevel: 3,
  strict: false,
  circuitBreakerThreshold: 3,
  circuitBreakerCooldownMs: 60_000,
};

type Resolved = typeof DEFAULTS & Pick<CachePolicy, 'shouldRestore' | 'shouldSave'>;

function checkPolicy(policy: CachePolicy, where: string): void {
  const positiveInt = (name: keyof CachePolicy, v: unknown) => {
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1))
      throw new CacheConfigError(
        'INVALID_OPTION',
        `${where}: \`${name}\` must be a positive integer, got ${String(v)}`,
      );
  };
  const nonNegative = (name: keyof CachePolicy, v: unknown) => {
    if (v !== undefined && (typeof v !== 'number' || Number.isNaN(v) || v < 0))
      throw new CacheConfigError(
        'INVALID_OPTION',
        `${where}: \`${name}\` must be a number >= 0, got ${String(v)}`,
      );
  };
  positiveInt('concurrency', policy.concurrency);
  positiveInt('circuitBreakerThreshold', policy.circuitBreakerThreshold);
  nonNegative('maxEntrySize', policy.maxEntrySize);
  nonNegative('lockWaitTimeoutMs', policy.lockWaitTimeoutMs);
  nonNegative('circuitBreakerCooldownMs', policy.circuitBreakerCooldownMs);
  if (
    policy.compressionLevel !== undefined &&
    (!Number.isInteger(policy.compressionLevel) ||
      policy.compressionLevel < 1 ||
      policy.compressionLevel > 22)
  )
    throw new CacheConfigError(
      'INVALID_OPTION',
      `${where}: \`compressionLevel\` must be an integer from 1 to 22 (zstd), got ${String(policy.compressionLevel)}`,
    );
  for (const name of ['readOnly', 'force', 'strict'] as const) {
    if (policy[name] !== undefined && typeof policy[name] !== 'boolean')
      throw new CacheConfigError('INVALID_OPTION', `${where}: \`${name}\` must be a boolean`);
  }
  for (const name of ['shouldRestore', 'shouldSave'] as const) {
    if (policy[name] !== undefined && typeof policy[name] !== 'function')
      throw new CacheConfigError('INVALID_OPTION', `${where}: \`${name}\` must be a function`);
  }
}

function pickPolicy(source: CachePolicy): CachePolicy {
  const out: CachePolicy = {};
  for (const k of [...Object.keys(DEFAULTS), 'shouldRestore', 'shouldSave'] as (keyof CachePolicy)[]) {
    if (source[k] !== undefined) (out as Record<string, unknown>)[k] = source[k];
  }
  return out;
}

const isAbort = (error: unknown, signal: AbortSignal | undefined) =>
  (signal?.aborted === true && (error === signal.reason || (error as Error)?.name === 'AbortError')) ||
  (error as Error)?.name === 'AbortError';

/** A short, secret-free reason for a warning message. */
function describe(error: unknown): { message: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const message = redactUrls(error.message.split('\n')[0] ?? '');
    return typeof code === 'string' ? { message: `${message} [${code}]`, code } : { message };
  }
  return { message: redactUrls(String(error)) };
}

function isOom(error: unknown): boolean {
  // NOTE: by code and classification only (a typed store or lock error, or a raw Redis `OOM` reply
  // from a user's store), never by the message text.
  if ((error as { code?: unknown })?.code === 'REDIS_OOM') return true;
  if (error instanceof LockUnavailableError) return error.reason === 'oom';
  return classifyRedisFailure(error) === 'oom';
}

function newStats(): RunStats {
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

function checkTaskOptions(options: KeyOptions, where: string, needGenerates: boolean): void {
  if (typeof options !== 'object' || options === null)
    throw new CacheConfigError('INVALID_OPTION', `${where}: options must be an object`);
  if (typeof options.task !== 'string' || options.task === '')
    throw new CacheConfigError(
      'INVALID_OPTION',
      `${where}: \`task\` must be a non-empty string (the task's name)`,
    );
  if (typeof options.dir !== 'string' || options.dir === '')
    throw new CacheConfigError('INVALID_OPTION', `${where}: \`dir\` must be the task's directory`);
  if (!Array.isArray(options.sources) || options.sources.some((s) => typeof s !== 'string'))
    throw new CacheConfigError('INVALID_OPTION', `${where}: \`sources\` must be an array of globs`);
  if (needGenerates) {
    const g = (options as StepOptions).generates;
    if (!Array.isArray(g) || g.length === 0 || g.some((s) => typeof s !== 'string' || s === ''))
      throw new CacheConfigError(
        'INVALID_OPTION',
        `${where}: \`generates\` must be a non-empty array of globs (a task without declared outputs cannot be cached)`,
      );
  }
  if (options.key !== undefined) validateKey(options.key);
  if (options.policy !== undefined) checkPolicy(options.policy, `${where} policy`);
}

/**
 * Creates a cache. URLs are parsed and options validated here (a {@link CacheConfigError}
 * naming the field and the remedy); the store and the lock are opened on first use.
 *
 * @example
 * const cache = createCache({ store: 'oci://harbor.example.com/task-cache/build', lock: process.env.LOCK_URL });
 * const result = await cache.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, build);
 */
export function createCache(options: CacheOptions = {}): Cache {
  if (typeof options !== 'object' || options === null)
    throw new CacheConfigError('INVALID_OPTION', 'createCache: options must be an object');
  checkPolicy(options, 'createCache');
  const env = options.env ?? process.env;
  const enabled = options.enabled ?? true;
  if (typeof enabled !== 'boolean')
    throw new CacheConfigError('INVALID_OPTION', 'createCache: `enabled` must be a boolean');
  const onEvent = options.onEvent;
  if (onEvent !== undefined && typeof onEvent !== 'function')
    throw new CacheConfigError('INVALID_OPTION', 'createCache: `onEvent` must be a function');
  const basePolicy = pickPolicy(options);

  // Parse eagerly: a bad URL or tag is a configuration-time error.
  let storeUrl: StoreUrl | undefined;
  let storeObject: OciStore | undefined;
  if (typeof options.store === 'string' || options.store === undefined)
    storeUrl = parseStoreUrl(options.store ?? '');
  else if (
    typeof options.store === 'object' &&
    options.store !== null &&
    typeof options.store.fetchManifest === 'function'
  )
    storeObject = options.store;
  else
    throw new CacheConfigError('INVALID_OPTION', 'createCache: `store` must be a store URL or an OciStore');
  const urlTag = storeUrl && 'tag' in storeUrl ? storeUrl.tag : undefined;

  let lockUrl: LockUrl | undefined;
  let lockObject: CacheLock | undefined;
  const noLock = options.lock === false;
  if (typeof options.lock === 'string' || options.lock === undefined)
    lockUrl = parseLockOption(options.lock ?? '', 'createCache');
  else if (options.lock !== false) {
    if (
      typeof options.lock !== 'object' ||
      options.lock === null ||
      typeof options.lock.acquireOrWait !== 'function'
    )
      throw new CacheConfigError(
        'INVALID_OPTION',
        'createCache: `lock` must be a lock URL, a lock object or false',
      );
    lockObject = options.lock;
  }
  const lockUrlKey = lockUrl?.kind === 'redis' ? lockUrl.key : undefined;
  const lockLocation = lockUrl?.kind === 'redis' ? describeLockUrl(lockUrl) : 'local';

  let storePromise: Promise<OciStore> | undefined;
  let lockPromise: Promise<CacheLock> | undefined;
  let closed = false;
  const getStore = (signal?: AbortSignal): Promise<OciStore> => {
    if (storeObject) return Promise.resolve(storeObject);
    storePromise ??= openStore(storeUrl!, { env, ...(signal ? { signal } : {}) }).then((r) => r.store);
    storePromise.catch(() => {
      storePromise = undefined; // retry on the next run
    });
    return storePromise;
  };
  const getLock = (): Promise<CacheLock> => {
    if (lockObject) return Promise.resolve(lockObject);
    lockPromise ??= openLock(lockUrl!, { env }).then((r) => r.lock);
    lockPromise.catch(() => {
      lockPromise = undefined;
    });
    return lockPromise;
  };

  const emit = (event: CacheEvent) => {
    if (!onEvent) return;
    try {
      onEvent(event);
    } catch {
      // A throwing listener must not break the build.
    }
  };

  const resolvePolicy = (override?: CachePolicy): Resolved => ({
    ...DEFAULTS,
    ...basePolicy,
    ...(override ? pickPolicy(override) : {}),
  });

  async function computeKey(
    o: KeyOptions,
    stats?: RunStats,
  ): Promise<{ key: string; files?: SourceDigest[] }> {
    if (o.key !== undefined) return { key: validateKey(o.key) };
    if (urlTag !== undefined) return { key: urlTag };
    const t = performance.now();
    const { dir, sources, signal, task, key: _key, policy: _policy, ...extra } = o;
    const details = await checksumDetailed({ ...extra, dir, sources, ...(signal ? { signal } : {}) });
    if (stats) stats.checksumMs = performance.now() - t;
    return { key: defaultKey(task, details.checksum), files: details.files };
  }

  /** Per-call context: warnings, strict mode, the breaker. */
  function context(task: string, key: string, policy: Resolved, stats: RunStats, signal?: AbortSignal) {
    let breaker: Breaker | undefined;
    const ctx = {
      warn(code: CacheWarningCode, message: string, cause?: unknown): void {
        stats.warnings += 1;
        const causeCode = (cause as { code?: unknown })?.code;
        emit({
          type: 'warning',
          task,
          key,
          code,
          message,
          ...(typeof causeCode === 'string' ? { causeCode } : {}),
        });
        if (policy.strict) throw new CacheRunError(code, `task "${task}": ${message}`, { cause });
      },
      breaker(store: OciStore): Breaker {
        breaker ??= breakerFor(
          store.location,
          policy.circuitBreakerThreshold,
          policy.circuitBreakerCooldownMs,
        );
        return breaker;
      },
      /** Runs a store operation; trouble → warning + `undefined` (strict: throws). Abort propagates. */
      async guard<R>(
        store: OciStore,
        code: CacheWarningCode,
        what: string,
        fn: () => Promise<R>,
      ): Promise<R | undefined> {
        const b = ctx.breaker(store);
        if (b.isOpen()) {
          ctx.warn(
            'CIRCUIT_OPEN',
            `${what} skipped: ${store.location} failed repeatedly, skipping it for a while`,
          );
          return undefined;
        }
        try {
          const r = await fn();
          b.success();
          return r;
        } catch (error) {
          if (isAbort(error, signal)) throw error;
          signal?.throwIfAborted();
          // Entry errors are about one entry, not the store's health.
          if (!(error instanceof EntryError)) b.failure();
          const { message } = describe(error);
          const c: CacheWarningCode = isOom(error)
            ? 'STORE_OUT_OF_MEMORY'
            : (error as { code?: unknown })?.code === 'ENTRY_TOO_LARGE' || error instanceof StoreLimitError
              ? 'ENTRY_TOO_LARGE'
              : code;
          ctx.warn(c, `${what} failed (${store.location}): ${message}`, error);
          return undefined;
        }
      },
    };
    return ctx;
  }

  type Ctx = ReturnType<typeof context>;

  const progress = (task: string, key: string) => (p: TransferProgress) =>
    emit({
      type: 'progress',
      task,
      key,
      phase: p.phase,
      chunksDone: p.chunksDone,
      ...(p.chunksTotal === undefined ? {} : { chunksTotal: p.chunksTotal }),
      bytesDone: p.bytesDone,
      bytesProcessed: p.bytesProcessed,
    });

  async function doLookup(
    ops: EntryOps,
    store: OciStore,
    ctx: Ctx,
    task: string,
    key: string,
    signal?: AbortSignal,
  ) {
    emit({ type: 'lookup', task, key, store: store.location });
    const hit = await ctx.guard(store, 'LOOKUP_FAILED', 'lookup', () =>
      ops.hasEntry(store, key, signal ? { signal } : {}),
    );
    emit({ type: hit ? 'hit' : 'miss', task, key });
    return hit === true;
  }

  async function doRestore(
    ops: EntryOps,
    store: OciStore,
    ctx: Ctx,
    o: StepOptions,
    key: string,
    policy: Resolved,
    stats: RunStats,
  ): Promise<RestoreEntryResult | undefined> {
    const t = performance.now();
    const result = await ctx.guard(store, 'RESTORE_FAILED', 'restore', () =>
      ops.restoreEntry(store, {
        dir: o.dir,
        generates: o.generates,
        tag: key,
        concurrency: policy.concurrency,
        onProgress: progress(o.task, key),
        ...(o.signal ? { signal: o.signal } : {}),
      }),
    );
    stats.restoreMs += performance.now() - t;
    if (result) {
      stats.chunksFetched = result.chunksFetched;
      stats.bytesFetched = result.bytesFetched;
      stats.files = result.files;
      emit({
        type: 'restored',
        task: o.task,
        key,
        digest: result.digest,
        chunksFetched: result.chunksFetched,
        bytesFetched: result.bytesFetched,
        files: result.files,
        durationMs: result.durationMs,
      });
    }
    return result;
  }

  /** Saves after a successful build; returns why not when it did not. */
  async function doSave(
    ops: EntryOps,
    store: OciStore,
    ctx: Ctx,
    o: StepOptions,
    key: string,
    files: SourceDigest[] | undefined,
    policy: Resolved,
    stats: RunStats,
    leaseLost: () => boolean,
  ): Promise<{ saved: SaveEntryResult } | { reason: NotSavedReason }> {
    if (policy.readOnly) return { reason: 'read-only' };
    const missing = await missingOutputs(o.dir, o.generates);
    if (missing.length > 0) {
      ctx.warn(
        'OUTPUTS_MISSING',
        `nothing saved: the build did not produce the declared outputs ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
      );
      return { reason: 'outputs-missing' };
    }
    if (policy.shouldSave && !(await policy.shouldSave({ task: o.task, key, store: store.location })))
      return { reason: 'policy' };
    if (ctx.breaker(store).isOpen()) {
      ctx.warn('CIRCUIT_OPEN', `save skipped: ${store.location} failed repeatedly, skipping it for a while`);
      return { reason: 'circuit-open' };
    }
    const storeCap = (store as { maxEntrySize?: unknown }).maxEntrySize;
    const maxEntrySize =
      typeof storeCap === 'number' ? Math.min(storeCap, policy.maxEntrySize) : policy.maxEntrySize;
    const t = performance.now();
    let tooLarge = false;
    const saved = await ctx.guard(store, 'SAVE_FAILED', 'save', async () => {
      try {
        return await ops.saveEntry(store, {
          dir: o.dir,
          generates: o.generates,
          tag: key,
          task: o.task,
          key,
          ...(files ? { sources: files.map((f) => ({ path: f.path, digest: f.digest })) } : {}),
          compressionLevel: policy.compressionLevel,
          concurrency: policy.concurrency,
          ...(Number.isFinite(maxEntrySize) ? { maxEntrySize } : {}),
          onProgress: progress(o.task, key),
          ...(o.signal ? { signal: o.signal } : {}),
        });
      } catch (error) {
        if ((error as { code?: unknown })?.code === 'ENTRY_TOO_LARGE' || error instanceof StoreLimitError)
          tooLarge = true;
        throw error;
      }
    });
    stats.saveMs += performance.now() - t;
    if (!saved) return { reason: tooLarge ? 'entry-too-large' : 'save-failed' };
    stats.chunksPushed = saved.chunksPushed;
    stats.chunksTotal = saved.chunksTotal;
    stats.bytesPushed = saved.bytesPushed;
    stats.files = saved.files;
    emit({
      type: 'saved',
      task: o.task,
      key,
      digest: saved.digest,
      chunksPushed: saved.chunksPushed,
      chunksTotal: saved.chunksTotal,
      bytesPushed: saved.bytesPushed,
      bytesTotal: saved.bytesTotal,
      files: saved.files,
      durationMs: saved.durationMs,
      ...(leaseLost() ? { leaseLost: true } : {}),
    });
    return { saved };
  }

  /** Opens the store; failure → warning (strict: throws) and `undefined`. */
  async function storeOrWarn(ctx: Ctx, signal?: AbortSignal): Promise<OciStore | undefined> {
    try {
      return await getStore(signal);
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      if (error instanceof CacheConfigError) throw error;
      ctx.warn('LOOKUP_FAILED', `cannot open the store: ${describe(error).message}`, error);
      return undefined;
    }
  }

  const cache: Cache = {
    checksum,
    urlsafe,

    async key(o) {
      checkTaskOptions(o, 'key', false);
      return (await computeKey(o)).key;
    },

    async lookup(o) {
      checkTaskOptions(o, 'lookup', false);
      const policy = resolvePolicy(o.policy);
      const stats = newStats();
      const { key } = await computeKey(o, stats);
      const ctx = context(o.task, key, policy, stats, o.signal);
      const store = await storeOrWarn(ctx, o.signal);
      if (!store || !enabled) return { key, hit: false };
      return { key, hit: await doLookup(await entryOps(), store, ctx, o.task, key, o.signal) };
    },

    async restore(o) {
      checkTaskOptions(o, 'restore', true);
      const policy = resolvePolicy(o.policy);
      const stats = newStats();
      const { key } = await computeKey(o, stats);
      const ctx = context(o.task, key, policy, stats, o.signal);
      const store = await storeOrWarn(ctx, o.signal);
      if (!store || !enabled) return undefined;
      if (policy.shouldRestore && !(await policy.shouldRestore({ task: o.task, key, store: store.location })))
        return undefined;
      return doRestore(await entryOps(), store, ctx, o, key, policy, stats);
    },

    async save(o) {
      checkTaskOptions(o, 'save', true);
      const policy = resolvePolicy(o.policy);
      const stats = newStats();
      const { key, files } = await computeKey(o, stats);
      const ctx = context(o.task, key, policy, stats, o.signal);
      const store = await storeOrWarn(ctx, o.signal);
      if (!store || !enabled) return undefined;
      const r = await doSave(await entryOps(), store, ctx, o, key, files, policy, stats, () => false);
      return 'saved' in r ? r.saved : undefined;
    },

    async run<T>(o: RunOptions, build: BuildFunction<T>): Promise<RunResult<T>> {
      const started = performance.now();
      checkTaskOptions(o, 'run', true);
      if (typeof build !== 'function')
        throw new CacheConfigError('INVALID_OPTION', 'run: `build` must be a function');
      if (o.lockKey !== undefined && (typeof o.lockKey !== 'string' || o.lockKey === ''))
        throw new CacheConfigError('INVALID_OPTION', 'run: `lockKey` must be a non-empty string');
      if (closed) throw new CacheConfigError('INVALID_OPTION', 'run: the cache is closed');
      const policy = resolvePolicy(o.policy);
      const stats = newStats();
      const signal = o.signal ?? new AbortController().signal;
      signal.throwIfAborted();
      const task = o.task;

      const runBuild = async (key: string): Promise<T> => {
        const t = performance.now();
        try {
          return await build({ signal, key });
        } finally {
          stats.buildMs += performance.now() - t;
        }
      };
      const finish = (r: Omit<RunResult<T>, 'stats'>): RunResult<T> => {
        stats.totalMs = performance.now() - started;
        return { ...r, stats };
      };

      // 1. Disabled → just build.
      if (!enabled) {
        const value = await runBuild('');
        return finish({ status: 'built', key: '', reason: 'disabled', value });
      }

      // 2. Checksum → key.
      const { key, files } = await computeKey(o, stats);
      const ctx = context(task, key, policy, stats, o.signal);
      const ops = await entryOps();

      const store = await storeOrWarn(ctx, o.signal);
      const restoreFrom = async (): Promise<RunResult<T> | undefined> => {
        if (!store) return undefined;
        if (policy.shouldRestore && !(await policy.shouldRestore({ task, key, store: store.location })))
          return undefined;
        const r = await doRestore(ops, store, ctx, o, key, policy, stats);
        return r ? finish({ status: 'restored', key }) : undefined;
      };
      const lookup = async (): Promise<boolean> => {
        if (!store) return false;
        const t = performance.now();
        try {
          return await doLookup(ops, store, ctx, task, key, o.signal);
        } finally {
          stats.lookupMs += performance.now() - t;
        }
      };

      // 3. Lookup; hit → restore.
      if (!policy.force) {
        if (await lookup()) {
          const restored = await restoreFrom();
          if (restored) return restored;
        }
      }

      // Build without saving (no store, read-only).
      const buildOnly = async (reason: NotSavedReason): Promise<RunResult<T>> => {
        const value = await runBuild(key);
        return finish({ status: 'built', key, reason, value });
      };
      if (!store) return buildOnly('save-failed');
      if (policy.readOnly) return buildOnly('read-only');

      // 4. Miss → lock.
      let lease: CacheLease | undefined;
      let leaseLost = false;
      if (!noLock) {
        const lockKey = o.lockKey ?? lockUrlKey ?? `lock:${key}`;
        let lock: CacheLock | undefined;
        try {
          lock = await getLock();
        } catch (error) {
          if (isAbort(error, o.signal)) throw error;
          const { message } = describe(error);
          emit({ type: 'lock-unavailable', task, key, reason: 'unavailable', message });
          ctx.warn('LOCK_UNAVAILABLE', `lock unavailable, building without it: ${message}`, error);
        }
        if (lock) {
          const t = performance.now();
          let polls = 0;
          const outcome = await lock.acquireOrWait(lockKey, {
            // NOTE: the lock calls isDone before every attempt. The first call comes before the
            // first attempt, right after our own lookup missed: answer it without asking the store.
            // A second call means the lock is held by someone else: this run is now waiting.
            isDone: async (s) => {
              polls += 1;
              if (polls === 1) return false;
              if (polls === 2) emit({ type: 'lock-waiting', task, key, lock: lockLocation });
              if (policy.force) return false;
              try {
                return await ops.hasEntry(store, key, { signal: s });
              } catch {
                return false;
              }
            },
            waitTimeoutMs: policy.lockWaitTimeoutMs,
            signal,
          });
          stats.lockWaitMs = performance.now() - t;
          switch (outcome.kind) {
            case 'acquired':
              lease = outcome.lease;
              emit({
                type: 'lock-acquired',
                task,
                key,
                ...(lease.fence === undefined ? {} : { fence: String(lease.fence) }),
              });
              break;
            case 'peer-finished': {
              emit({ type: 'lock-peer-finished', task, key });
              const restored = await restoreFrom();
              if (restored) return restored;
              break; // the peer's entry is not there after all: build without the lock
            }
            case 'timed-out': {
              const message = `waited ${policy.lockWaitTimeoutMs} ms for another job`;
              emit({ type: 'lock-unavailable', task, key, reason: 'timed-out', message });
              ctx.warn('LOCK_TIMED_OUT', `lock wait timed out (${message}), building without it`);
              break;
            }
            case 'unavailable': {
              const { message } = describe(outcome.error ?? 'unavailable');
              emit({ type: 'lock-unavailable', task, key, reason: 'unavailable', message });
              ctx.warn(
                'LOCK_UNAVAILABLE',
                `lock unavailable, building without it: ${message}`,
                outcome.error,
              );
              break;
            }
          }
        }
      }

      let releasedAs: 'built' | 'failed' | undefined;
      const release = async (outcome: 'built' | 'failed') => {
        if (!lease || releasedAs) return;
        releasedAs = outcome;
        try {
          await lease.release(outcome);
        } catch {
          // release never throws for backend trouble; nothing more to do.
        }
      };
      const onLeaseLost = () => {
        leaseLost = true;
      };
      lease?.signal.addEventListener('abort', onLeaseLost, { once: true });
      if (lease?.signal.aborted) leaseLost = true;

      try {
        // Acquired: a peer may have pushed while we waited.
        if (lease && !policy.force) {
          if (await lookup()) {
            const restored = await restoreFrom();
            if (restored) {
              await release('built');
              return restored;
            }
          }
        }

        // 5. Build. A failure rejects with the build's own error; the lock is released `failed`.
        let value: T;
        try {
          value = await runBuild(key);
        } catch (error) {
          await release('failed');
          throw error;
        }
        signal.throwIfAborted();
        if (lease && !lease.isValid()) leaseLost = true;

        // 6. Save (outputs missing → nothing saved, with a warning). A lost lease does not stop
        // the save: entries are content-addressed and the tag is pushed last, so a concurrent
        // builder's identical entry is harmless.
        const saved = await doSave(ops, store, ctx, o, key, files, policy, stats, () => leaseLost);
        await release('saved' in saved ? 'built' : 'failed');
        if (leaseLost)
          ctx.warn(
            'LEASE_LOST',
            'saved' in saved
              ? 'the lock lease was lost during the build; the result was saved anyway (entries are content-addressed)'
              : 'the lock lease was lost during the build',
            lease?.signal.reason,
          );
        const base = { key, value, ...(leaseLost ? { leaseLost: true } : {}) };
        return 'saved' in saved
          ? finish({ status: 'saved', ...base })
          : finish({ status: 'built', reason: saved.reason, ...base });
      } finally {
        lease?.signal.removeEventListener('abort', onLeaseLost);
        await release('failed');
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      const tasks: Promise<unknown>[] = [];
      if (storePromise) tasks.push(storePromise.then((s) => s.close?.()).catch(() => {}));
      if (lockPromise) tasks.push(lockPromise.then((l) => l.close?.()).catch(() => {}));
      await Promise.all(tasks);
    },
  };
  return cache;
}

/** `true` when `error` is the cache's own (config or strict-mode) error rather than the build's. */
export function isCacheError(error: unknown): error is TaskCacheError {
  return error instanceof TaskCacheError;
}
