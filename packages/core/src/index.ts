// --- the cached run (issue 8): keys, config, locks, policies, events ---

// The lock types and errors, as @task-cache/lock defines them (what `createCache({ lock })` accepts,
// what a lease aborts with, what parseLockUrl and openLock throw), and the lock's Redis error
// classification and redacted URL description (what `task-cache doctor` reports with).
export {
  type AcquireOptions,
  type AcquireOutcome,
  classifyRedisFailure,
  describeLockUrl,
  isTlsFailure,
  type Lease,
  LeaseLostError,
  type Lock,
  type LockAcquirer,
  LockConfigError,
  LockError,
  LockUnavailableError,
  type RedisFailureKind,
  type RedisLockUrl,
  type RedisStandaloneLockUrl,
  type ReleaseOutcome,
  redisReplyCode,
} from '@task-cache/lock';
export { type LockUrl, parseLockUrl } from './config/lock-url.js';
export {
  defaultStoreDir,
  namedMemoryStore,
  type OpenLockOptions,
  type OpenStoreOptions,
  openLock,
  openStore,
} from './config/open.js';
export { parseStoreUrl, redactUrl, type StoreUrl } from './config/urls.js';
export {
  CHUNK_MEDIA_TYPE,
  COMPAT_CONFIG_MEDIA_TYPE,
  ENTRY_ANNOTATION,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_ARTIFACT_TYPE_V2,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  ENTRY_FORMAT_VERSION,
  type EntryConfig,
  type EntryForm,
  PACK_MEDIA_TYPE,
} from './entry/format.js';
export { restoreEntry, saveEntry } from './entry/lazy.js';
export { hasEntry, lookupEntry } from './entry/resolve.js';
export type {
  EntryChecker,
  EntryLimits,
  EntryReader,
  EntryWriter,
  FormFallback,
  HasEntry,
  LookupEntry,
  LookupEntryOptions,
  ResolvedEntry,
  RestoreEntry,
  RestoreEntryCommonOptions,
  RestoreEntryOptions,
  RestoreEntryResult,
  SaveEntry,
  SaveEntryOptions,
  SaveEntryResult,
  TransferProgress,
} from './entry/types.js';
export {
  CacheConfigError,
  type CacheConfigErrorCode,
  CacheFsError,
  CacheRunError,
  type CacheRunErrorCode,
  CacheTimeoutError,
  EntryCorruptError,
  EntryError,
  type EntryErrorCode,
  type EntryErrorOptions,
  EntryOutputsError,
  EntryRefusedError,
  EntryTooLargeError,
  InvalidOptionError,
  TaskCacheError,
  type TaskCacheErrorOptions,
} from './errors.js';
export { formatBytes, formatEvent } from './events/format.js';
export type {
  CacheEvent,
  CacheEventBase,
  CacheEventListener,
  CacheFormatFallbackEvent,
  CacheHitEvent,
  CacheLookupEvent,
  CacheMissEvent,
  CacheProgressEvent,
  CacheReadOnlyEvent,
  CacheRestoredEvent,
  CacheSavedEvent,
  CacheUpToDateEvent,
  CacheWarningCode,
  CacheWarningEvent,
  LockAcquiredEvent,
  LockPeerFinishedEvent,
  LockUnavailableEvent,
  LockWaitingEvent,
} from './events/types.js';
export {
  describeChange,
  describeExplanation,
  diffInputs,
  type Explanation,
  type InputChange,
  type PreviousEntry,
} from './explain/diff.js';
export { parseRecordedInputs, type RecordedInputs } from './explain/inputs.js';
export {
  type ChecksumDetails,
  type ChecksumInputs,
  checksum,
  checksumDetailed,
  type KeyInputs,
  type SourceDigest,
} from './key/checksum.js';
export {
  defaultKey,
  MAX_TAG_LENGTH,
  MAX_TASK_TAG_LENGTH,
  TAG_PATTERN,
  taskTag,
  urlsafe,
  validateKey,
} from './key/urlsafe.js';
export { type Cache, createCache, isCacheError } from './run/cache.js';
export type {
  AcquireOrWaitOptions,
  BuildFunction,
  CacheLease,
  CacheLimits,
  CacheLock,
  CacheOptions,
  CachePolicy,
  CacheTimeouts,
  KeyOptions,
  LeaseOutcome,
  LockAcquireResult,
  MissReason,
  NotSavedReason,
  PolicyContext,
  RunOptions,
  RunResult,
  RunStats,
  StepOptions,
} from './run/types.js';
export type { RunRecord, RunSummary, TaskStoreCounters } from './stats/log.js';
export { type CountedMethod, type CountingStore, countingStore } from './store/counting.js';
export { defaultCacheDir } from './store/default-dir.js';
export { createMemoryStore, type MemoryStore, type MemoryStoreOptions } from './store/memory.js';
export {
  DEFAULT_MAX_AGE_MS,
  DEFAULT_MAX_SIZE,
  DEFAULT_PRUNE_INTERVAL_MS,
  parseDuration,
  parseSize,
} from './tier/bounds.js';
export type { PruneOptions, PruneResult } from './tier/prune.js';
export {
  isTiered,
  parseTiers,
  type TieredStore,
  type TieredStoreOptions,
  type TierMode,
  type TierModes,
  tieredStore,
} from './tier/tiered.js';
export {
  createSigner,
  keyId,
  loadSigningKey,
  loadTrustedKeys,
  SIGNATURE_ANNOTATION,
  SIGNER_ANNOTATION,
} from './trust/keys.js';
export { payloadBytes, SIGNATURE_PAYLOAD_VERSION, type SigningPayload } from './trust/payload.js';
export { detectUntrustedContext } from './trust/untrusted-context.js';
export { type TrustVerdict, verifyEntry } from './trust/verify.js';
