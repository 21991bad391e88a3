/**
 * `saveEntry` and `restoreEntry` as the package exports them: each loads its module (and the
 * worker drivers, the codec, the tar code behind it) on its first call, so that importing
 * `@task-cache/core` costs only the modules every run needs (issue 14: a task runner starts one
 * process per task, and most of them only look up a key and find the outputs up to date).
 */
import type { RestoreEntry, SaveEntry } from './types.js';

/**
 * Saves the outputs of `options.dir` matching `options.generates` as a chunk-deduplicated
 * entry tagged `options.tag` (format: docs/format.md). Chunks already in the store are not
 * uploaded again. The tag is pushed last, so a failure or an abort leaves no visible entry.
 * The save code is loaded on the first call.
 *
 * @throws {InvalidOptionError} for bad options; {@link EntryTooLargeError} above `maxEntrySize`;
 * `EntryOutputsError` for outputs an entry cannot hold; store errors (`OciError`) as they come.
 */
export const saveEntry: SaveEntry = async (store, options) =>
  (await import('./save.js')).saveEntry(store, options);

/**
 * Restores the entry tagged `options.tag` (or the `options.entry` that `lookupEntry` resolved:
 * then only its chunks are fetched) into `options.dir`, atomically: on any failure (bad digest,
 * truncated stream, refused entry, network error, abort) the outputs are left exactly as they
 * were. Resolves `undefined` on a miss (no such tag, or a part of the entry is missing from the
 * store). The restore code is loaded on the first call.
 *
 * @throws {EntryRefusedError | EntryCorruptError | EntryTooLargeError} for unsafe or damaged
 * entries (the caller treats them as a miss with a warning); store errors as they come;
 * the signal's reason on abort.
 */
export const restoreEntry: RestoreEntry = async (store, options) =>
  (await import('./restore.js')).restoreEntry(store, options);
