import type { OciStore } from '@task-cache/oci';
import type { CacheEventListener } from '../events/types.js';
import type { ChecksumInputs } from '../key/checksum.js';

/** The outcome of a lease at release time: `failed` lets a waiter take over and build. */
export type LeaseOutcome = 'built' | 'failed';

/** A held lock (a lease). Structural twin of `@task-cache/redis-lock`'s `Lease`. */
export interface CacheLease {
  /** Fires when the lease is lost (expired, stolen, server gone). The build is NOT aborted by it. */
  readonly signal: AbortSignal;
  /** Fencing token, when the lock provides one. */
  readonly fence?: number;
  /** `true` while the lease is still held. */
  isValid(): boolean;
  /** Releases the lease, telling waiters whether the build succeeded. Never throws. */
  release(outcome?: LeaseOutcome): Promise<unknown>;
}

/** Result of {@link CacheLock.acquireOrWait} (`@task-cache/redis-lock`'s `AcquireOutcome`). */
export type LockAcquireResult =
  | { kind: 'acquired'; lease: CacheLease }
  | { kind: 'peer-finished' }
  | { kind: 'timed-out' }
  | { kind: 'unavailable'; error?: unknown };

/** Options of {@link CacheLock.acquireOrWait}. */
export interface AcquireOrWaitOptions {
  /** Polled while waiting: `true` when a peer's entry is now in the store. */
  isDone?: (signal: AbortSignal) => boolean | Promise<boolean>;
  /** Give up waiting after this many ms (→ `timed-out`). */
  waitTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * The narrow lock capability the run needs: `@task-cache/redis-lock`'s `Lock` (Redis, lock-file,
 * in-process) fits, or your own object.
 */
export interface CacheLock {
  acquireOrWait(key: string, options?: AcquireOrWaitOptions): Promise<LockAcquireResult>;
  /** Releases connections. */
  close?(): Promise<void>;
}

/** Information a policy function receives. */
export interface PolicyContext {
  task: string;
  key: string;
  /** Redacted store location. */
  store: string;
}

/**
 * Policies: plain data plus optional functions, so a policy can be unit-tested with the memory
 * store. Functions win over the matching plain field.
 */
export interface CachePolicy {
  /** Restore but never push (untrusted pull-request builds). Read-only runs take no lock. @default false */
  readOnly?: boolean;
  /** Skip lookup, rebuild and overwrite the tag. @default false */
  force?: boolean;
  /** Refuse to save entries larger than this many uncompressed bytes (skipped with a warning). @default Infinity */
  maxEntrySize?: number;
  /** Longest wait for another job's lock before building without it. @default 600000 (10 min) */
  lockWaitTimeoutMs?: number;
  /** Parallel blob transfers per save/restore. @default 8 */
  concurrency?: number;
  /** zstd level of saved chunks. @default 3 */
  compressionLevel?: number;
  /** Cache trouble (registry down, 401, OOM, lost lease, corrupt entry) rejects the run instead of warning. @default false */
  strict?: boolean;
  /** Consecutive store failures (counted per cache instance) that open its circuit breaker. @default 3 */
  circuitBreakerThreshold?: number;
  /** How long an open circuit skips the store before trying again. @default 60000 */
  circuitBreakerCooldownMs?: number;
  /** Decide per run whether a hit may be restored. @default () => true */
  shouldRestore?: (context: PolicyContext) => boolean | Promise<boolean>;
  /** Decide per run whether a fresh build is saved (after `readOnly`). @default () => true */
  shouldSave?: (context: PolicyContext & { bytesTotal?: number }) => boolean | Promise<boolean>;
}

/** Options of {@link createCache}. */
export interface CacheOptions extends CachePolicy {
  /**
   * Where entries live: a store URL (`oci://…`, `oci-layout:PATH[:TAG]`, `redis://…`, `rediss://…`,
   * `memory://NAME`) or an {@link OciStore}. A tag in the URL is the key of every run.
   * Empty or absent: the embedded default (an image layout in `defaultCacheDir()`).
   * @default '' (embedded layout store)
   */
  store?: string | OciStore;
  /**
   * The lock: `redis://[USER][:PASSWORD]@HOST[:PORT][/KEY]`, `rediss://…`, `local:` or a
   * {@link CacheLock}. Empty or absent: the local lock (one machine). `false`: no lock at all.
   * @default '' (local lock)
   */
  lock?: string | CacheLock | false;
  /** Whether caching is on (the Taskfile's `enabled`). `false`: `run()` just builds. @default true */
  enabled?: boolean;
  /**
   * Environment for credentials (`TASK_CACHE_OCI_*`, docker/podman config files) and the default
   * cache dir (`TASK_CACHE_DIR`, else `XDG_CACHE_HOME`, else `HOME`): with `stateDir`, it decides
   * where every file the cache writes goes. @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * Directory of the files the cache writes besides the store's entries: the remembered base
   * entries (`bases/`) and the local lock files (`locks/`). The embedded default store is the
   * cache dir itself (see `defaultCacheDir`).
   * @default defaultCacheDir(env) — the cache dir, so `bases/` and `locks/` are under it
   */
  stateDir?: string;
  /** Receives every event (see {@link formatEvent}). */
  onEvent?: CacheEventListener;
}

/** Options that identify a task's key (see `Cache.key`). */
export interface KeyOptions extends Omit<ChecksumInputs, 'dir' | 'sources' | 'signal'> {
  /** Task name (the `.TASK` of the Taskfile). */
  task: string;
  /** Task directory. */
  dir: string;
  /** Globs of the inputs. */
  sources: readonly string[];
  /** Use this key (must be a valid tag). @default tag of the store URL, else `<urlsafe(task)>-<checksum>` */
  key?: string;
  /** Per-call policy overrides (validated at the call's entry, fields named `policy.<name>`). */
  policy?: CachePolicy;
  signal?: AbortSignal;
}

/** Options of `Cache.restore` and `Cache.save`. */
export interface StepOptions extends KeyOptions {
  /** Globs of the outputs. */
  generates: readonly string[];
}

/** Options of {@link Cache.run}. */
export interface RunOptions extends Omit<ChecksumInputs, 'dir' | 'sources' | 'signal'> {
  /** Task name (the `.TASK` of the Taskfile). */
  task: string;
  /** Task directory; sources and outputs are relative to it. */
  dir: string;
  /** Globs of the inputs (the `sources` of the Taskfile). */
  sources: readonly string[];
  /** Globs of the outputs (the `generates` of the Taskfile). */
  generates: readonly string[];
  /** Use this key instead of computing one (must be a valid tag). @default tag of the store URL, else `<urlsafe(task)>-<checksum>` */
  key?: string;
  /** Lock key. @default the lock URL's path, else `lock:<key>` */
  lockKey?: string;
  /** Per-run policy overrides. */
  policy?: CachePolicy;
  signal?: AbortSignal;
}

/** The build callback: receives the run's signal. */
export type BuildFunction<T = unknown> = (context: { signal: AbortSignal; key: string }) => Promise<T> | T;

/** Timings and transfer counts of one run. */
export interface RunStats {
  checksumMs: number;
  lookupMs: number;
  lockWaitMs: number;
  buildMs: number;
  saveMs: number;
  restoreMs: number;
  totalMs: number;
  chunksPushed: number;
  chunksTotal: number;
  bytesPushed: number;
  chunksFetched: number;
  bytesFetched: number;
  files: number;
  warnings: number;
}

/**
 * Why a run built without saving: `disabled`, `read-only`, `policy` (shouldSave said no),
 * `outputs-missing`, `entry-too-large`, `save-failed`, `circuit-open`.
 */
export type NotSavedReason =
  | 'disabled'
  | 'read-only'
  | 'policy'
  | 'outputs-missing'
  | 'entry-too-large'
  | 'save-failed'
  | 'circuit-open';

/** What `run()` did. */
export interface RunResult<T = unknown> {
  /** `restored` (from the cache), `saved` (built and saved) or `built` (built, not saved: see `reason`). */
  status: 'restored' | 'saved' | 'built';
  key: string;
  reason?: NotSavedReason;
  /** The build function's return value (absent when restored). */
  value?: T;
  /** `true` when the build ran while the lock was lost or unusable. */
  leaseLost?: boolean;
  stats: RunStats;
}
