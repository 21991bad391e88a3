/**
 * Restore: tag → manifest(s) → config (or an entry `lookupEntry` resolved) → chunks fetched in parallel (bounded) through the store's
 * verifying reader (size only: `contentVerified`) → zstd, bounded by each chunk's declared size →
 * uncompressed size and sha256 checked against the config (the one hash of each byte) → in-order tar extraction into a staging directory inside the task
 * directory (while later chunks download) → swapped into place only when everything verified.
 */
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { type Descriptor, ManifestInvalidError } from '@task-cache/oci';
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
import type { CodecPool, WorkerCodec } from '../workers/codec-pool.js';
import { createSlotPool, type Slot, type SlotPool } from '../workers/slots.js';
import { compressBound, type EntryConfig } from './format.js';
import {
  checkResolvedEntry,
  corruptBlob,
  DEFAULT_RESTORE_MAX_ENTRY,
  isMissing,
  isVerificationFailure,
  resolveEntry,
} from './resolve.js';
import { DEFAULT_INLINE_BELOW, restoreInline } from './restore-inline.js';
import type { EntryReader, RestoreEntry, RestoreEntryResult, TransferProgress } from './types.js';

/** Chunks handed to the extract worker and not yet written. */
const EXTRACT_WINDOW = 2;
/** Slots for verified chunks: the extract window, one being handed over, three being decompressed. */
const OUT_SLOTS = EXTRACT_WINDOW + 4;

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
    chunksTotal: layers.length,
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
      entries = await restoreInline(store, layers, config.chunks, staging, {
        codec,
        generates,
        keepMtimes: config.archive.mtimes === 'kept',
        concurrency,
        signal: inner.signal,
        onChunk(layer, size) {
          knownDigests(store).add(layer.digest);
          progress.chunksDone++;
          progress.bytesDone += layer.size;
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
      // Every chunk passes through two reused slots of shared memory: its compressed bytes (read
      // in place by a codec worker) and its verified uncompressed bytes (read in place by the
      // extract worker). Nothing is allocated per chunk on this side.
      let maxIn = 1;
      let maxOut = 1;
      layers.forEach((layer, i) => {
        const size = (config.chunks[i] as ChunkInfo).size;
        maxOut = Math.max(maxOut, size);
        maxIn = Math.max(maxIn, Math.min(layer.size, compressBound(size)));
      });
      const inSlots = createSlotPool(concurrency, maxIn);
      const outSlots = createSlotPool(OUT_SLOTS, maxOut);
      const held = new Map<Uint8Array, Slot>();
      // NOTE: output slots are taken strictly in chunk order, so the chunk the extractor waits for
      // is never starved by later ones (any number of slots is deadlock-free).
      let outTurn: Promise<unknown> = Promise.resolve();
      const chunks = mapOrdered(
        layers.map((layer, i) => ({ layer, info: config.chunks[i] as ChunkInfo })),
        concurrency,
        async ({ layer, info }, i) => {
          // The output slot is taken once this chunk is downloaded and the previous chunk has its
          // slot: downloads run `concurrency` wide while verified chunks wait in few slots.
          let fetched: () => void = () => {};
          const downloaded = new Promise<void>((resolve) => {
            fetched = resolve;
          });
          const turn = Promise.all([outTurn, downloaded]).then(() => outSlots.acquire(inner.signal));
          outTurn = turn.catch(() => {});
          let data: Uint8Array;
          let out: Slot | undefined;
          try {
            data = await fetchChunk(store, pool, codec, layer, info, i, inner.signal, inSlots, async () => {
              fetched();
              out = await turn;
              return out.view;
            });
          } catch (err) {
            fetched();
            turn.then((s) => s.release()).catch(() => {});
            throw err;
          }
          held.set(data, out as Slot);
          knownDigests(store).add(layer.digest);
          progress.chunksDone++;
          progress.bytesDone += layer.size;
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

type ChunkInfo = EntryConfig['chunks'][number];

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

async function fetchChunk(
  store: EntryReader,
  pool: CodecPool,
  codec: WorkerCodec,
  layer: Readonly<Descriptor>,
  info: ChunkInfo,
  index: number,
  signal: AbortSignal,
  inSlots: SlotPool,
  output: () => Promise<Uint8Array>,
): Promise<Uint8Array> {
  if (layer.size > compressBound(info.size)) {
    throw new EntryCorruptError(
      `chunk ${index} is ${layer.size} bytes compressed, too large for ${info.size} bytes of data`,
      {
        digest: layer.digest,
      },
    );
  }
  // The compressed bytes go into a reused slot (the verifying reader enforces size and digest);
  // the codec worker reads them in place and writes the verified chunk into `into`.
  const slot = await inSlots.acquire(signal);
  try {
    const compressed = slot.view;
    let pos = 0;
    // NOTE: one hash per byte. The config, verified by its digest from the manifest, lists this
    // chunk's uncompressed sha256, which the codec worker checks after decompressing (bounded by
    // the declared size) before a byte reaches the extractor: that proves the content, so the
    // store checks only the compressed size here (docs/format.md, "What a reader verifies").
    for await (const p of await store.fetchBlob(layer, { signal, contentVerified: true })) {
      if (pos + p.byteLength > layer.size) {
        throw new EntryCorruptError(`chunk ${index} is longer than its descriptor says`, {
          digest: layer.digest,
        });
      }
      compressed.set(p, pos);
      pos += p.byteLength;
    }
    signal.throwIfAborted();
    const into = await output();
    return await pool.decompress(
      codec,
      compressed.subarray(0, pos),
      info.size,
      info.digest,
      index,
      layer.digest,
      into,
    );
  } finally {
    slot.release();
  }
}
