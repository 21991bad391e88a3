import type { KeyObject } from 'node:crypto';
import type { AcquireOptions, AcquireOutcome, Lease, LockAcquirer, ReleaseOutcome } from '@task-cache/lock';
import type { OciStore } from '@task-cache/oci';
import type { EntryLimits } from '../entry/types.js';
import type { CacheEventListener } from '../events/types.js';
import type { Explanation } from '../explain/diff.js';
import type { ChecksumInputs } from '../key/checksum.js';
import type { TierModes } from '../tier/tiered.js';

// NOTE: the lock types belong to @task-cache/lock; core uses them as they are. The aliases below keep
// code written against core's former names compiling (deprecated, to be removed in 0.3).

/** @deprecated Use `ReleaseOutcome` (from `@task-cache/lock`, re-exported by core). */
export type LeaseOutcome = ReleaseOutcome;
/** @deprecated Use `Lease` (from `@task-cache/lock`, re-exported by core). */
export type CacheLease = Lease;
/** @deprecated Use `AcquireOutcome` (from `@task-cache/lock`, re-exported by core). */
export type LockAcquireResult = AcquireOutcome;
/** @deprecated Use `AcquireOptions` (from `@task-cache/lock`, re-exported by core). */
export type AcquireOrWaitOptions = AcquireOptions;
/** @deprecated Use `LockAcquirer` (from `@task-cache/lock`, re-exported by core). */
export type CacheLock = LockAcquirer;

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
  /**
   * Restore but never push (untrusted pull-request builds). Read-only runs take no lock. `'auto'`
   * makes runs read-only where untrusted code runs — a pull or merge request from a fork on
   * GitHub Actions, GitLab CI, Buildkite, CircleCI or Azure Pipelines (see docs/security.md) —
   * with a `read-only` event saying why; `false` turns that off explicitly.
   * @default 'auto'
   */
  readOnly?: boolean | 'auto';
  /**
   * Explain every miss: compare the inputs with the task's newest previous entry and put the
   * diff in `result.explanation` and the `miss` event (one manifest and one config GET more per
   * miss). `cache.explain()` works either way. @default false
   */
  explain?: boolean;
  /** Skip lookup, rebuild and overwrite the tag (saves otherwise never replace an existing entry). @default false */
  force?: boolean;
  /** Refuse to save entries larger than this many uncompressed bytes (skipped with a warning). @default Infinity */
  maxEntrySize?: number;
  /** Longest wait for another job's lock before building without it. @default 600000 (10 min) */
  lockWaitTimeoutMs?: number;
  /** Parallel blob transfers per save/restore. @default 8 */
  concurrency?: number;
  /** zstd level of saved chunks. @default 3 */
  compressionLevel?: number;
  /**
   * Entry format version of saves (`saveEntry`'s `formatVersion`): `2` packs the chunks into
   * 16–64 MiB blobs (about 42 per GB instead of ~870; docs/format.md §11); `1` for fleets with
   * readers older than version 2. Restores read both.
   * @default 2
   */
  formatVersion?: 1 | 2;
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
   * The lock: a lock URL (`redis://[USER][:PASSWORD]@HOST[:PORT][/KEY]`, `rediss://…`, `local:`; see
   * `parseLockUrl`) or a lock object — any `Lock` of `@task-cache/lock`, or your own object with
   * `acquireOrWait` (and optionally `close`), a `LockAcquirer`. Empty or absent: the local lock (one
   * machine). `false`: no lock at all. A malformed URL throws a `CacheConfigError` here.
   * @default '' (local lock)
   */
  lock?: string | LockAcquirer | false;
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
   * entries (`bases/`), the local lock files (`locks/`) and the run log (`stats/runs.jsonl`). The embedded default store is the
   * cache dir itself (see `defaultCacheDir`).
   * @default defaultCacheDir(env) — the cache dir, so `bases/` and `locks/` are under it
   */
  stateDir?: string;
  /**
   * Bound of the local store (the embedded default or an `oci-layout:` URL), in bytes: after a
   * save, a background prune removes the least-recently-used entries (a restore counts as a
   * use) until the blobs of the kept ones fit, then the blobs nothing references. The most
   * recently used entry is always kept. `Infinity` lifts it. Other stores are not pruned.
   * @default the `TASK_CACHE_MAX_SIZE` environment variable (e.g. `5GB`, `512MiB`, `off`), else 5 GiB
   */
  maxSize?: number;
  /**
   * Entries of the local store unused for longer than this (ms) are pruned, and so are the
   * remembered bases of the state dir. `Infinity` lifts it.
   * @default the `TASK_CACHE_MAX_AGE` environment variable (e.g. `14d`, `12h`, `off`), else 14 days
   */
  maxAge?: number;
  /**
   * The background prune after a save runs at most once per this interval (ms) for all the
   * processes sharing the state dir (a stamp file, `prune-stamp`). `0`: after every save.
   * @default 600000 (10 minutes)
   */
  pruneIntervalMs?: number;
  /**
   * Two tiers: the local store (the embedded default layout under the cache dir, bounded by
   * `maxSize`/`maxAge`) in front of `store` (the remote). Reads try the local tier first and fall
   * back to the remote; a remote hit is written into the local tier while it is restored (no
   * second download); saves go to both (remote trouble is a `SAVE_FAILED` warning, the local save
   * stands). Per-tier mode `'rw' | 'r' | 'w' | 'off'`: `true` (both `rw`), a string in the spirit
   * of Turborepo's `--cache` (`'local:rw,remote:r'`; a tier left out is `rw`) or
   * `{ local, remote }`. Ignored when `store` is itself local (the default or `oci-layout:`).
   * @default the `TASK_CACHE_TIERS` environment variable (same string form), else one tier (`store` alone)
   */
  tiers?: boolean | string | TierModes;
  /** Receives every event (see {@link formatEvent}). */
  onEvent?: CacheEventListener;
  /**
   * Scoped writes with fallback reads: stores (URLs or `OciStore`s) a run reads, in this order,
   * when `store` — the run's own scope, the only one written — misses. E.g. `store` a repository
   * per pull request, `readScopes` the base branch's then main's. A hit says which scope it came
   * from (`result.scope`). Only `run()` reads them; the steps `lookup()`/`restore()` read `store`.
   * @default [] (only `store`)
   */
  readScopes?: ReadonlyArray<string | OciStore>;
  /**
   * Ed25519 private key signing every saved entry (docs/security.md): a `KeyObject`, PEM text or
   * the path of a PEM file. @default env `TASK_CACHE_SIGNING_KEY`, else entries are unsigned
   */
  signingKey?: string | KeyObject;
  /**
   * Ed25519 public keys whose signatures a restore requires: a `KeyObject`, PEM text (several
   * keys may be concatenated), a path of a PEM file, or a list of those (several keys: rotation).
   * When set, an unsigned, badly signed or re-tagged entry is a miss (`untrusted`) with a
   * warning, never restored.
   * @default env `TASK_CACHE_TRUSTED_KEYS` (PEM text, or paths separated by commas or newlines), else none: entries are not checked
   */
  trustedKeys?: string | KeyObject | ReadonlyArray<string | KeyObject>;
  /**
   * Time budgets of the cache's network work. The defaults keep a dead, black-holed or
   * slow-loris registry at ≤ 30 s per run in total (the circuit breaker then skips it at once).
   * @default see {@link CacheTimeouts}
   */
  timeouts?: CacheTimeouts;
  /**
   * Size and count caps, checked against what a registry declares before anything is fetched:
   * a hostile or oversized entry is a miss with a typed reason, at flat memory.
   * @default see {@link CacheLimits}
   */
  limits?: CacheLimits;
}

/**
 * Time budgets (milliseconds). A lookup or save over its budget is cache trouble like any
 * other: a warning, and the build's result is returned (strict mode: an error). The registry
 * ones apply to `oci://` stores the cache opens from a URL.
 */
export interface CacheTimeouts {
  /**
   * Budget of one lookup (the entry's manifests and config), retries included.
   * @default 10000
   */
  lookupMs?: number;
  /**
   * Budget of one save (every chunk, manifest and the tag), retries included.
   * @default 600000
   */
  saveMs?: number;
  /**
   * Budget of one restore (the chunk downloads and the extraction).
   * @default 600000
   */
  restoreMs?: number;
  /**
   * Registry: TCP+TLS connect timeout.
   * @default 5000
   */
  connectMs?: number;
  /**
   * Registry: wait for the response headers of one request.
   * @default 10000
   */
  headersMs?: number;
  /**
   * Registry: longest pause between two pieces of a response body.
   * @default 10000
   */
  bodyIdleMs?: number;
  /**
   * Registry: budget of one request attempt, through the last byte of its answer (not blob
   * transfers, which `bodyIdleMs` and the step budgets bound).
   * @default 30000
   */
  requestMs?: number;
}

/** Caps on what the cache reads from a store (see {@link EntryLimits}), plus the registry's own. */
export interface CacheLimits extends EntryLimits {
  /**
   * Registry: largest token-server answer.
   * @default 1048576 (1 MiB)
   */
  maxTokenBytes?: number;
  /**
   * Registry: largest error body read.
   * @default 65536 (64 KiB)
   */
  maxErrorBodyBytes?: number;
  /**
   * Registry: most tag-list pages read.
   * @default 1000
   */
  maxTagPages?: number;
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
  /**
   * Globs of the outputs. A restore makes them equal to the entry: matching files the entry
   * does not hold are removed.
   */
  generates: readonly string[];
  /**
   * Accept `generates` globs that match the whole task directory (`**`, `*`), `.git`, or source
   * files, for exotic layouts. Without it they are refused before the build
   * (`CACHE_ERR_INVALID_OPTION`). Either way a restore never writes, replaces or removes a file
   * matching `sources` or under `.git`, and a save never stores one.
   * @default false
   */
  allowBroadGenerates?: boolean;
}

/** Options of {@link Cache.run}. */
export interface RunOptions extends Omit<ChecksumInputs, 'dir' | 'sources' | 'signal'> {
  /** Task name (the `.TASK` of the Taskfile). */
  task: string;
  /** Task directory; sources and outputs are relative to it. */
  dir: string;
  /** Globs of the inputs (the `sources` of the Taskfile). */
  sources: readonly string[];
  /**
   * Globs of the outputs (the `generates` of the Taskfile). A restore makes them equal to the
   * entry: matching files the entry does not hold are removed (the `restored` event's `removed`).
   */
  generates: readonly string[];
  /**
   * Accept `generates` globs that match the whole task directory (`**`, `*`), `.git`, or source
   * files, for exotic layouts. Without it they are refused before the build
   * (`CACHE_ERR_INVALID_OPTION`). Either way a restore never writes, replaces or removes a file
   * matching `sources` or under `.git`, and a save never stores one.
   * @default false
   */
  allowBroadGenerates?: boolean;
  /** Use this key instead of computing one (must be a valid tag). @default tag of the store URL, else `<urlsafe(task)>-<checksum>` */
  key?: string;
  /** Lock key. @default the lock URL's path, else `lock:<key>` */
  lockKey?: string;
  /**
   * Warm start: `'latest'` restores, on a miss and before the build, the task's newest entry (the
   * pointer tag `<urlsafe(task)>.latest`) into the outputs, so an incremental build (TypeScript's
   * `tsbuildinfo`, a bundler's cache) starts from the last good state. The run is still a miss: it
   * builds, saves (pushing only the changed chunks) and reports `status: 'saved'` with
   * `restoredFrom`. Not done for read-only runs.
   * @default undefined (a miss builds from the outputs as they are)
   */
  fallback?: 'latest';
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
 * `outputs-missing`, `entry-too-large`, `save-failed`, `circuit-open`, `key-collision` (the key
 * holds another task's entry: it is left alone), `exists` (another writer saved the key meanwhile:
 * no overwrite without `force`).
 */
export type NotSavedReason =
  | 'disabled'
  | 'read-only'
  | 'policy'
  | 'outputs-missing'
  | 'entry-too-large'
  | 'save-failed'
  | 'circuit-open'
  | 'key-collision'
  | 'exists';

/**
 * Why a run did not restore: `not-found` (no entry under the key), `key-collision` (the entry
 * under the key belongs to another task whose name maps to the same key), `untrusted` (trusted
 * keys are configured and the entry is unsigned, badly signed or signed for another key),
 * `forced` (`policy.force`), `not-restored` (found, but `shouldRestore` said no or the restore
 * failed: see the warnings), `unavailable` (the store could not be read: see the warnings).
 */
export type MissReason =
  | 'not-found'
  | 'key-collision'
  | 'untrusted'
  | 'forced'
  | 'not-restored'
  | 'unavailable';

/** What `run()` did. */
export interface RunResult<T = unknown> {
  /** `restored` (from the cache), `saved` (built and saved) or `built` (built, not saved: see `reason`). */
  status: 'restored' | 'saved' | 'built';
  key: string;
  /**
   * With `built`: why nothing was saved. With `restored`: `up-to-date` when the outputs on disk
   * already were exactly the entry's (a local stamp said so) and nothing was restored.
   */
  reason?: NotSavedReason | 'up-to-date';
  /** The build function's return value (absent when restored). */
  value?: T;
  /** `true` when the build ran while the lock was lost or unusable. */
  leaseLost?: boolean;
  /** Why nothing was restored (absent on `restored`). */
  missReason?: MissReason;
  /** Why the key missed, against the task's previous entry (with `policy.explain`). */
  explanation?: Explanation;
  /**
   * On `restored`: the time the hit saved, the build duration the entry records minus this
   * restore's time, in milliseconds (absent when the entry records no duration).
   */
  timeSavedMs?: number;
  /** On `restored`: the redacted location of the store the entry came from (`store` or one of `readScopes`). */
  scope?: string;
  /**
   * On `restored` with two tiers (`tiers`): the tier that served the entry — `local`, or `remote`
   * (which also filled the local tier).
   */
  tier?: 'local' | 'remote';
  /** Warm start (`fallback: 'latest'`): the key of the entry restored before the build. */
  restoredFrom?: string;
  stats: RunStats;
}
