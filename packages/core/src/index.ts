export {
  CHUNK_MEDIA_TYPE,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_FORMAT_VERSION,
  type EntryConfig,
} from './entry/format.js';
export { hasEntry } from './entry/resolve.js';
export { restoreEntry } from './entry/restore.js';
export { saveEntry } from './entry/save.js';
export type {
  HasEntry,
  RestoreEntry,
  RestoreEntryOptions,
  RestoreEntryResult,
  SaveEntry,
  SaveEntryOptions,
  SaveEntryResult,
  TransferProgress,
} from './entry/types.js';
export {
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
export { type CountedMethod, type CountingStore, countingStore } from './store/counting.js';
export { defaultCacheDir } from './store/default-dir.js';
export { createMemoryStore, type MemoryStore, type MemoryStoreOptions } from './store/memory.js';
