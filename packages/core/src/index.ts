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
