/**
 * `createCache()`: validates the options (./options.ts), builds the instance's context
 * (./context.ts) and exposes the run (./run.ts) and its steps (./steps) as the {@link Cache}.
 */
import type { RestoreEntryResult, SaveEntryResult } from '../entry/types.js';
import { CacheConfigError, InvalidOptionError, TaskCacheError } from '../errors.js';
import type { Explanation } from '../explain/diff.js';
import { explainKey } from '../explain/explain.js';
import { checkBoolean, checkString } from '../internal/validate.js';
import { type ChecksumInputs, checksum } from '../key/checksum.js';
import { urlsafe } from '../key/urlsafe.js';
import { type RunSummary, readCounters, summarize, type TaskStoreCounters } from '../stats/log.js';
import { markInUse, type PruneOptions, type PruneResult, pruneLocal } from '../tier/prune.js';
import {
  type CacheContext,
  type CallContext,
  createCacheContext,
  createCallContext,
  newStats,
} from './context.js';
import { checkTaskOptions, parseCacheOptions } from './options.js';
import { checkSourcesAndOutputs } from './outputs.js';
import { runTask } from './run.js';
import { type KeyResult, keyStep } from './steps/key.js';
import { lookupStep } from './steps/lookup.js';
import { restoreStep } from './steps/restore.js';
import { saveStep } from './steps/save.js';
import type { BuildFunction, CacheOptions, KeyOptions, RunOptions, RunResult, StepOptions } from './types.js';

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
  /**
   * Why the task's key misses (or would): its inputs against the task's newest previous entry
   * (the one this workspace last saved or restored, else the task's pointer tag) — files added,
   * removed and changed, env names whose value changed, tools, commands, platform, extra — or
   * that there is no previous entry, or that it expired. With trusted keys, an unverified previous
   * entry is ignored. Store trouble → a warning and "no previous entry".
   */
  explain(options: KeyOptions): Promise<Explanation>;
  /**
   * Cumulative counters per task and store of every run logged in this cache's state dir — by
   * any process sharing it: hits, misses, time saved, build time, bytes pushed and pulled, chunks
   * deduplicated.
   */
  stats(): Promise<TaskStoreCounters[]>;
  /**
   * Every `run()` of this cache instance — task, key, status, reasons, explanation, timings and
   * bytes — with totals; written as JSON to `options.file` when given (a CI artifact).
   */
  summary(options?: { file?: string }): Promise<RunSummary>;
  /**
   * Bounds the local store now (`maxSize`, `maxAge`: least-recently-used entries, then the blobs
   * and lock files nothing uses) and prunes the state dir (remembered bases, old lock files).
   * Safe while other processes save and restore. A store that cannot be pruned (a registry,
   * Redis, memory) is left alone (`supported: false`); the state dir is pruned all the same.
   * `dryRun` reports without removing. Errors (an unreadable layout) reject: this is for tools.
   */
  prune(options?: PruneOptions): Promise<PruneResult>;
  /** Closes the store and the lock this cache opened (not the ones passed in as objects); waits for a background prune. */
  close(): Promise<void>;
}

/** The key and the call context of one step call (`lookup`, `restore`, `save`). */
async function stepCall(
  cache: CacheContext,
  o: KeyOptions,
  where: string,
  needGenerates: boolean,
): Promise<KeyResult & { call: CallContext }> {
  const override = checkTaskOptions(o, where, needGenerates);
  const stats = newStats();
  const { key, files, inputs } = await keyStep(cache, o, stats);
  const call = createCallContext(cache, {
    task: o.task,
    key,
    policy: cache.policy(override),
    stats,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  if (needGenerates) await checkSourcesAndOutputs(call, o as StepOptions, files);
  return { key, ...(files ? { files } : {}), ...(inputs ? { inputs } : {}), call };
}

/** The task of a call's options, whatever they hold (they are validated by the call itself). */
const taskOf = (o: unknown): string => {
  const task = (o as { task?: unknown } | null | undefined)?.task;
  return typeof task === 'string' ? task : '';
};

/**
 * Creates a cache. Every option is validated here (an `InvalidOptionError` naming the field, or a
 * `CacheConfigError` for a bad URL or key); the store and the lock are opened on first use. The
 * cache's state (its circuit breaker, its open store and lock) belongs to this instance, and every
 * file it writes is under the cache dir of `env` or `stateDir`.
 *
 * @example
 * const cache = createCache({ store: 'oci://harbor.example.com/task-cache/build', lock: process.env.LOCK_URL });
 * const result = await cache.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, build);
 */
export function createCache(options: CacheOptions = {}): Cache {
  const cache = createCacheContext(parseCacheOptions(options));
  return {
    checksum,
    urlsafe,

    async key(o) {
      checkTaskOptions(o, 'key', false);
      return (await keyStep(cache, o)).key;
    },

    lookup: (o) =>
      cache.inTask(taskOf(o), async () => {
        const { key, call } = await stepCall(cache, o, 'lookup', false);
        const store = await call.openStore();
        if (!store || !cache.enabled) return { key, hit: false };
        return { key, hit: (await lookupStep(call, store)) !== undefined };
      }),

    restore: (o) =>
      cache.inTask(taskOf(o), async () => {
        const { key, call } = await stepCall(cache, o, 'restore', true);
        const store = await call.openStore();
        if (!store || !cache.enabled) return undefined;
        const use = await markInUse(store, key);
        try {
          return await restoreStep(call, store, o, { tag: key });
        } finally {
          await use?.release();
        }
      }),

    save: (o) =>
      cache.inTask(taskOf(o), async () => {
        const { key, files, inputs, call } = await stepCall(cache, o, 'save', true);
        const store = await call.openStore();
        if (!store || !cache.enabled) return undefined;
        const use = await markInUse(store, key);
        try {
          const r = await saveStep(call, store, o, files, () => false, inputs);
          return 'saved' in r ? r.saved : undefined;
        } finally {
          await use?.release();
        }
      }),

    async prune(o = {}) {
      if (cache.closed) throw new CacheConfigError('CACHE_ERR_CLOSED', 'prune: the cache is closed');
      if (typeof o !== 'object' || o === null)
        throw new InvalidOptionError('options', 'prune: options must be an object');
      const dryRun = checkBoolean('dryRun', o.dryRun, false);
      const store = await cache.store(o.signal);
      return pruneLocal(store, cache.stateDir, cache.bounds, {
        dryRun,
        ...(o.signal ? { signal: o.signal } : {}),
      });
    },

    run: (o, build) => cache.inTask(taskOf(o), () => runTask(cache, o, build)),

    async explain(o) {
      const { key, inputs, call } = await stepCall(cache, o, 'explain', false);
      const store = await call.openStore();
      if (!store) return { task: o.task, key, previous: { status: 'none' }, changes: [] };
      return explainKey(store, {
        task: o.task,
        key,
        dir: o.dir,
        inputs,
        basesDir: cache.basesDir,
        trustedKeys: cache.trustedKeys,
        signal: o.signal,
      });
    },

    async stats() {
      await cache.runLog.flushed();
      return readCounters(cache.stateDir);
    },

    summary(options = {}) {
      if (typeof options !== 'object' || options === null)
        throw new InvalidOptionError('options', 'summary: options must be an object');
      const file = options.file === undefined ? undefined : checkString('file', options.file);
      return summarize(cache.runLog.runs, file);
    },

    close: () => cache.close(),
  };
}

/** `true` when `error` is the cache's own (config or strict-mode) error rather than the build's. */
export function isCacheError(error: unknown): error is TaskCacheError {
  return error instanceof TaskCacheError;
}
