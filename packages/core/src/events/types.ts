/**
 * The typed event stream of a cached run. Events carry no secrets: store and lock locations are
 * redacted (`location` of the store, `redis://***:***@host:port`), warnings carry a code and a message
 * built from redacted errors.
 */

import type { Explanation } from '../explain/diff.js';
import type { MissReason } from '../run/types.js';

/** Fields every event carries. */
export interface CacheEventBase {
  /** The task's name, as passed to `run()`. */
  task: string;
  /** The cache key (the tag of the entry); absent only before the key is known. */
  key?: string;
}

/** Codes of {@link CacheWarningEvent}: why the cache could not do its part (the build is unaffected). */
export type CacheWarningCode =
  | 'LOOKUP_FAILED'
  | 'RESTORE_FAILED'
  | 'SAVE_FAILED'
  | 'OUTPUTS_MISSING'
  | 'SOURCES_EMPTY'
  | 'ENTRY_TOO_LARGE'
  | 'LOCK_UNAVAILABLE'
  | 'LOCK_TIMED_OUT'
  | 'LEASE_LOST'
  | 'CIRCUIT_OPEN'
  | 'STORE_OUT_OF_MEMORY'
  | 'KEY_COLLISION'
  | 'UNTRUSTED_ENTRY'
  /** The background prune of the local store failed (after the run's result; `task` is empty). */
  | 'PRUNE_FAILED';

/** The cache is asked for `key` in `store`. */
export interface CacheLookupEvent extends CacheEventBase {
  type: 'lookup';
  key: string;
  /** Redacted store location. */
  store: string;
}
/** The store has a complete entry for `key`. */
export interface CacheHitEvent extends CacheEventBase {
  type: 'hit';
  key: string;
}
/** The store has no entry for `key` (or none this run may restore: see `reason`). */
export interface CacheMissEvent extends CacheEventBase {
  type: 'miss';
  key: string;
  /** Why (absent: `not-found`). */
  reason?: MissReason;
  /** The inputs that changed since the task's previous entry (with `policy.explain`). */
  explanation?: Explanation;
}
/** `readOnly: 'auto'` made this run read-only: it restores but pushes nothing. */
export interface CacheReadOnlyEvent extends CacheEventBase {
  type: 'read-only';
  /** Why, e.g. `GitHub Actions pull_request from the fork someone/repo`. */
  reason: string;
}
/** Another process holds the lock: waiting for it to finish or release. */
export interface LockWaitingEvent extends CacheEventBase {
  type: 'lock-waiting';
  key: string;
  /** Redacted lock location. */
  lock: string;
}
/** This run holds the lock and builds. */
export interface LockAcquiredEvent extends CacheEventBase {
  type: 'lock-acquired';
  key: string;
  /** Fencing token of the lease, when the lock provides one. */
  fence?: string;
}
/** A peer built and saved the entry while this run waited. */
export interface LockPeerFinishedEvent extends CacheEventBase {
  type: 'lock-peer-finished';
  key: string;
}
/** The lock could not be used (server down, OOM, timed out): the run builds without it. */
export interface LockUnavailableEvent extends CacheEventBase {
  type: 'lock-unavailable';
  key: string;
  /** `'unavailable'` (server trouble) or `'timed-out'` (waited longer than `lockWaitTimeoutMs`). */
  reason: 'unavailable' | 'timed-out';
  message: string;
}
/** Progress of a push (save) or a fetch (restore), for progress bars. */
export interface CacheProgressEvent extends CacheEventBase {
  type: 'progress';
  key: string;
  phase: 'push' | 'fetch';
  chunksDone: number;
  /** Unknown (`undefined`) while the entry is still being packed. */
  chunksTotal?: number;
  /** Compressed bytes moved over the wire so far. */
  bytesDone: number;
  /** Uncompressed bytes processed so far. */
  bytesProcessed: number;
}
/** The build's outputs were saved under `key`. */
export interface CacheSavedEvent extends CacheEventBase {
  type: 'saved';
  key: string;
  digest: string;
  chunksPushed: number;
  chunksTotal: number;
  /** Compressed bytes uploaded (the size the formatter prints). */
  bytesPushed: number;
  /** Uncompressed bytes of the entry. */
  bytesTotal: number;
  files: number;
  durationMs: number;
  /** `true` when the lease was lost during the build (the entry is content-addressed, so still valid). */
  leaseLost?: boolean;
}
/** The outputs were restored from the entry `key`. */
export interface CacheRestoredEvent extends CacheEventBase {
  type: 'restored';
  key: string;
  digest: string;
  chunksFetched: number;
  bytesFetched: number;
  files: number;
  /** Files matching `generates` that the entry did not hold, removed by the restore. */
  removed: number;
  durationMs: number;
  /** The build duration the entry records minus `durationMs` (absent when not recorded). */
  timeSavedMs?: number;
  /** With two tiers (`tiers`): the tier that served the entry (`remote` also filled the local one). */
  tier?: 'local' | 'remote';
}
/**
 * Information, not a warning: the registry refused the standard entry form (it allowlists media
 * types), the entry was saved in the compatible form in the same run, and later saves to this
 * registry use the compatible form at once (docs/registries.md).
 */
export interface CacheFormatFallbackEvent extends CacheEventBase {
  type: 'format-fallback';
  key: string;
  /** The registry (`HOST[:PORT]`). */
  registry: string;
  from: 'standard';
  to: 'compat';
  /** The registry's error code of the refusal (e.g. `MANIFEST_INVALID`). */
  code: string;
}
/**
 * The outputs on disk already are exactly those of the entry `key` (checked against the local
 * stamp written when they were saved or restored): nothing was restored.
 */
export interface CacheUpToDateEvent extends CacheEventBase {
  type: 'up-to-date';
  key: string;
  /** Outputs (files and symlinks) checked. */
  files: number;
}
/** The cache could not do its part; the build runs or its result stands. */
export interface CacheWarningEvent extends CacheEventBase {
  type: 'warning';
  code: CacheWarningCode;
  /** Human-readable reason, secrets redacted. */
  message: string;
  /** `code` of the underlying typed error, when there is one (e.g. `UNAUTHORIZED`, `CACHE_ERR_REDIS_OOM`). */
  causeCode?: string;
}

/** Every event `onEvent` receives; discriminated by `type`. */
export type CacheEvent =
  | CacheLookupEvent
  | CacheHitEvent
  | CacheMissEvent
  | CacheReadOnlyEvent
  | LockWaitingEvent
  | LockAcquiredEvent
  | LockPeerFinishedEvent
  | LockUnavailableEvent
  | CacheProgressEvent
  | CacheSavedEvent
  | CacheRestoredEvent
  | CacheUpToDateEvent
  | CacheFormatFallbackEvent
  | CacheWarningEvent;

/** Receives events; must not throw (a throwing listener is ignored). */
export type CacheEventListener = (event: CacheEvent) => void;
