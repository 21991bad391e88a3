/**
 * Restore: tag → manifest(s) → config (or an entry `lookupEntry` resolved) → chunks fetched in parallel (bounded) through the store's
 * verifying reader (size only: `contentVerified`) → zstd, bounded by each chunk's declared size →
 * uncompressed size and sha256 checked against the config (the one hash of each byte) → in-order tar extraction into a staging directory inside the task
 * directory (while later chunks download) → swapped into place only when everything verified.
 */
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { ManifestInvalidError } from '@task-cache/oci';
import {
  asCacheFsError,
  type CacheFsError,
  EntryCorruptError,
  EntryRefusedError,
  EntryTooLargeError,
  InvalidOptionError,
  TaskCacheError,
} from '../errors.js';
import { defaultStateDir, rememberBase } from '../internal/base.js';
import { knownDigests } from '../internal/known.js';
import { mapOrdered } from '../internal/ordered.js';
import { removeStaleStaging, stagingPrefix } from '../internal/scratch.js';
import { swapIntoPlace } from '../internal/swap.js';
import type { ExtractedEntry } from '../internal/tar-extract.js';
import {
  checkBoolean,
  checkGenerates,
  checkProtect,
  checkSize,
  checkString,
  checkTag,
  outputSelection,
  SHARED_OPTIONS,
} from '../internal/validate.js';
import { getZstdCodec, ZSTD_CODEC_MAX_CHUNK } from '../internal/zstd.js';
import { createSlotPool, type Slot } from '../workers/slots.js';
import { fetchRun, framesOf, largestRun, runsOf } from './frames.js';
import {
  checkResolvedEntry,
  corruptBlob,
  DEFAULT_RESTORE_MAX_ENTRY,
  isMissing,
  isVerificationFailure,
  resolveEntry,
} from './resolve.js';
import { DEFAULT_INLINE_BELOW, restoreInline } from './restore-inline.js';
import type { RestoreEntry, RestoreEntryResult, TransferProgress } from './types.js';

/** Chunks handed to the extract worker and not yet written. */
const EXTRACT_WINDOW = 2;
/** Slots for verified chunks: the extract window, one being handed over, three being decompressed. */
const OUT_SLOTS = EXTRACT_WINDOW + 4;
/** Compressed bytes of the runs downloading at once, at most (a run is up to 8 MiB). */
const IN_FLIGHT_BYTES = 36 * 1024 * 1024;
/** Chunks being decompressed at once (the codec pool has two workers). */
const DECODE_WIDTH = 3;

/**
 * Restores the entry tagged `options.tag` (or the `options.entry` that `lookupEntry` resolved:
 * then only its chunks are fetched) into `options.dir`, atomically: on any failure (bad digest,
 * truncated stream, refused entry, network error, abort) the outputs are left exactly as they
 * were. Resolves `undefined` on a miss (no such tag, or a part of the entry is missing from the
 * store).
 *
 * @throws {EntryRefusedError | EntryCorruptError | EntryTooLargeError} for unsafe or damaged
 * entries (the caller treats them as a miss with a warning); {@link CacheFsError} when this
 * machine's file system fails the restore (ENOSPC, EACCES, …: the outputs are left as they were);
 * store errors as they come; the signal's reason on abort.
 */
export const restoreEntry: RestoreEntry = async (store, options) => {
  const started = performance.now();
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', 'must be an object');
  const dir = checkString('dir', options.dir);
  // The output selection: `generates` minus the protected paths (sources, `.git`).
  const generates = outputSelection(
    checkGenerates(options.generates, {
      allowBroad: checkBoolean('allowBroadGenerates', options.allowBroadGenerates, false),
    }),
    checkProtect(options.protect),
  );
  const maxEntrySize = SHARED_OPTIONS.maxEntrySize(
    'maxEntrySize',
    options.maxEntrySize,
    DEFAULT_RESTORE_MAX_ENTRY,
  );
  if ((options.tag === undefined) === (options.entry === undefined))
    throw new InvalidOptionError('tag', 'pass either `tag` or an `entry` from lookupEntry(), not both');
  const given = options.entry === undefined ? undefined : checkResolvedEntry(options.entry, maxEntrySize);
  const tag = given?.tag ?? checkTag(options.tag);
  const concurrency = SHARED_OPTIONS.concurrency('concurrency', options.concurrency);
  const codec = getZstdCodec(SHARED_OPTIONS.codec('codec', options.codec)).name;
  const stateDir = SHARED_OPTIONS.stateDir('stateDir', options.stateDir) ?? defaultStateDir();
  const inlineBelow = checkSize('inlineBelow', options.inlineBelow, DEFAULT_INLINE_BELOW);
  const { signal } = options;
  signal?.throwIfAborted();
  const dirStat = await stat(dir).catch(() => undefined);
  if (!dirStat?.isDirectory())
    throw new InvalidOptionError('dir', `${JSON.stringify(dir)} is not a directory`);

  const entry =
    given ??
    (await resolveEntry(store, tag, { signal, maxEntrySize }).catch((err) => {
      if (isMissing(err)) return undefined;
      throw err;
    }));
  if (entry === undefined) return undefined;
  const { config, layers } = entry;
  const frames = framesOf(config.chunks, layers);
  if (codec === 'zstd-codec') {
    // Refused before any download: zstd-codec's fixed heap cannot hold such a chunk.
    let largest = 0;
    for (const c of config.chunks) largest = Math.max(largest, c.size);
    if (largest > ZSTD_CODEC_MAX_CHUNK) {
      throw new EntryTooLargeError(
        `entry ${tag} has a ${largest}-byte chunk; the zstd-codec codec decompresses at most ${ZSTD_CODEC_MAX_CHUNK} bytes per chunk (node:zlib's zstd, Node >= 22.15, restores it)`,
        { limit: ZSTD_CODEC_MAX_CHUNK, size: largest },
      );
    }
  }

  const progress: TransferProgress = {
    phase: 'fetch',
    chunksDone: 0,
    chunksTotal: frames.length,
    bytesDone: 0,
    bytesProcessed: 0,
  };
  const inner = new AbortController();
  // NOTE: our own signal, handed to every in-flight request and slot wait (bounded by the
  // concurrency options): no listener-leak warning for it.
  setMaxListeners(0, inner.signal);
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  // Staging left by a killed restore goes first (never a live one: see internal/scratch.ts).
  await removeStaleStaging(dir);
  let archiveSize = 0;
  for (const c of config.chunks) archiveSize += c.size;
  const staging = await mkdtemp(stagingPrefix(dir)).catch((err: unknown) => {
    throw asCacheFsError(err, 'restore');
  });
  try {
    let entries: ExtractedEntry[];
    if (archiveSize < inlineBelow) {
      // Small: on this thread, no worker started (restore-inline.ts).
      entries = await restoreInline(store, frames, staging, {
        codec,
        generates,
        keepMtimes: config.archive.mtimes === 'kept',
        concurrency,
        signal: inner.signal,
        onChunk(frame, size) {
          knownDigests(store).add(frame.layer.digest);
          progress.chunksDone++;
          progress.bytesDone += frame.length;
          progress.bytesProcessed += size;
          options.onProgress?.({ ...progress });
        },
      });
    } else {
      // NOTE: the worker drivers load only for an entry that needs them (issue 14).
      const [{ codecPool }, { extractInWorker }] = await Promise.all([
        import('../workers/codec-pool.js'),
        import('../workers/extract.js'),
      ]);
      const pool = codecPool();
      // Every chunk passes through two reused slots of shared memory: the compressed bytes of its
      // run (one request per run of adjacent frames, read in place by a codec worker) and its
      // verified uncompressed bytes (read in place by the extract worker). Nothing is allocated
      // per chunk on this side.
      const runs = runsOf(frames);
      let maxOut = 1;
      for (const f of frames) maxOut = Math.max(maxOut, f.size);
      // NOTE: as many runs download at once as `concurrency` allows within IN_FLIGHT_BYTES of
      // compressed bytes: 8 one-chunk runs of version 1 (≤ 4.2 MiB each), 4 runs of version 2.
      const largest = largestRun(runs);
      const width = Math.max(1, Math.min(concurrency, Math.floor(IN_FLIGHT_BYTES / largest)));
      const inSlots = createSlotPool(width, largest);
      const outSlots = createSlotPool(OUT_SLOTS, maxOut);
      const held = new Map<Uint8Array, Slot>();
      // Stage 1: runs download `concurrency` wide, in order. NOTE: each takes its slot before its
      // first await, so slots are granted in run order and the run the consumer waits for is
      // never starved by later ones.
      const downloads = mapOrdered(
        runs,
        width,
        async (run) => {
          const slot = inSlots.acquire(inner.signal);
          const taken = await slot;
          try {
            const bytes = await fetchRun(store, run, taken.view, inner.signal);
            knownDigests(store).add(run.layer.digest);
            return { run, bytes, slot: taken };
          } catch (err) {
            taken.release();
            throw err;
          }
        },
        (err) => inner.abort(err),
      );
      // Stage 2: the frames of the downloaded runs, in stream order; a run's slot goes back once
      // each of its frames is decompressed.
      async function* frameJobs() {
        for await (const { run, bytes, slot } of downloads) {
          let left = run.frames.length;
          const done = () => {
            if (--left === 0) slot.release();
          };
          let at = 0;
          for (const frame of run.frames) {
            yield { frame, bytes: bytes.subarray(at, at + frame.length), done };
            at += frame.length;
          }
        }
      }
      // NOTE: output slots are taken strictly in chunk order, so the chunk the extractor waits for
      // is never starved by later ones (any number of slots is deadlock-free).
      let outTurn: Promise<unknown> = Promise.resolve();
      const chunks = mapOrdered(
        frameJobs(),
        DECODE_WIDTH,
        async ({ frame, bytes, done }) => {
          const turn = outTurn.then(() => outSlots.acquire(inner.signal));
          outTurn = turn.catch(() => {});
          let out: Slot | undefined;
          let data: Uint8Array;
          try {
            out = await turn;
            data = await pool.decompress(
              codec,
              bytes,
              frame.size,
              frame.digest,
              frame.index,
              frame.layer.digest,
              out.view,
            );
          } catch (err) {
            out?.release();
            turn.then((s) => s.release()).catch(() => {});
            throw err;
          } finally {
            done();
          }
          held.set(data, out as Slot);
          progress.chunksDone++;
          progress.bytesDone += frame.length;
          progress.bytesProcessed += data.byteLength;
          options.onProgress?.({ ...progress });
          return data;
        },
        (err) => inner.abort(err),
      );
      entries = await extractInWorker(staging, chunks, {
        generates,
        keepMtimes: config.archive.mtimes === 'kept',
        signal: inner.signal,
        onFail: (err) => inner.abort(err),
        window: EXTRACT_WINDOW,
        onWritten: (piece) => {
          held.get(piece)?.release();
          held.delete(piece);
        },
      });
    }
    signal?.throwIfAborted();
    // NOTE: once the swap starts it runs to the end (or rolls back); it is short (renames only).
    const removed = await swapIntoPlace(dir, staging, entries, generates);
    await rememberBase(stateDir, dir, store.location, config.task, tag);
    const result: RestoreEntryResult = {
      digest: entry.digest,
      chunksFetched: progress.chunksDone,
      bytesFetched: progress.bytesDone,
      files: entries.filter((e) => e.type !== 'directory').length,
      removed,
      durationMs: performance.now() - started,
    };
    return result;
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (isMissing(err)) return undefined;
    if (err instanceof TaskCacheError) throw err;
    if (isVerificationFailure(err)) throw corruptBlob(err);
    throw restoreFailure(err, dir);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await rm(staging, { recursive: true, force: true });
  }
};

/** File-system codes an entry's content can cause while it is moved into place. */
const ENTRY_FS_CODES = new Set(['ENAMETOOLONG', 'EINVAL', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ELOOP', 'EILSEQ']);

/**
 * The typed error of a restore failure that is not one yet (issue 16): a manifest the store
 * refused as malformed or oversized is a corrupt entry (docs/format.md §8); a file-system error
 * the entry's paths caused is a refusal of that path; other file-system failures (ENOSPC, EACCES,
 * …) are a {@link CacheFsError}. A store's own error passes through.
 */
function restoreFailure(err: unknown, dir: string): unknown {
  if (err instanceof ManifestInvalidError)
    return new EntryCorruptError(`entry manifest is invalid: ${err.message}`, { cause: err });
  const e = err as NodeJS.ErrnoException | null;
  if (typeof e?.code === 'string' && ENTRY_FS_CODES.has(e.code) && typeof e.syscall === 'string') {
    const abs = typeof e.path === 'string' ? e.path : '';
    const path = abs.startsWith(`${dir}/`) ? relative(dir, abs) : abs;
    return new EntryRefusedError(
      `entry path ${JSON.stringify(path.slice(0, 200))} refused: the file system refused it [${e.code}]`,
      { path, cause: err },
    );
  }
  return asCacheFsError(err, 'restore');
}
