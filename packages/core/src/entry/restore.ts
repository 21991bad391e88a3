/**
 * Restore: tag → manifest(s) → config → chunks fetched in parallel (bounded) through the store's
 * verifying reader → zstd, bounded by each chunk's declared size → uncompressed size and sha256
 * checked against the config → in-order tar extraction into a staging directory inside the task
 * directory (while later chunks download) → swapped into place only when everything verified.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor, OciStore } from '@task-cache/oci';
import { EntryCorruptError, InvalidOptionError, TaskCacheError } from '../errors.js';
import { defaultStateDir, rememberBase } from '../internal/base.js';
import { knownDigests } from '../internal/known.js';
import { mapOrdered } from '../internal/ordered.js';
import { SCRATCH_PREFIX } from '../internal/outputs.js';
import { swapIntoPlace } from '../internal/swap.js';
import { checkGenerates, checkInt, checkSize, checkString, checkTag } from '../internal/validate.js';
import { getZstdCodec } from '../internal/zstd.js';
import { codecPool, type WorkerCodec } from '../workers/codec-pool.js';
import { extractInWorker } from '../workers/extract.js';
import { compressBound, type EntryConfig } from './format.js';
import { isMissing, resolveEntry } from './resolve.js';
import type { RestoreEntry, RestoreEntryResult, TransferProgress } from './types.js';

const DEFAULT_MAX_ENTRY = 16 * 1024 * 1024 * 1024;

/**
 * Restores the entry tagged `options.tag` into `options.dir`, atomically: on any failure
 * (bad digest, truncated stream, refused entry, network error, abort) the outputs are left
 * exactly as they were. Resolves `undefined` on a miss (no such tag, or a part of the entry
 * is missing from the store).
 *
 * @throws {EntryRefusedError | EntryCorruptError | EntryTooLargeError} for unsafe or damaged
 * entries (the caller treats them as a miss with a warning); store errors as they come;
 * the signal's reason on abort.
 */
export const restoreEntry: RestoreEntry = async (store, options) => {
  const started = performance.now();
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', 'must be an object');
  const dir = checkString('dir', options.dir);
  const generates = checkGenerates(options.generates);
  const tag = checkTag(options.tag);
  const maxEntrySize = checkSize('maxEntrySize', options.maxEntrySize, DEFAULT_MAX_ENTRY);
  const concurrency = checkInt('concurrency', options.concurrency, 8, 1, 256);
  const codec = getZstdCodec(options.codec ?? 'auto').name;
  const stateDir =
    options.stateDir === undefined
      ? defaultStateDir()
      : options.stateDir === false
        ? false
        : checkString('stateDir', options.stateDir);
  const { signal } = options;
  signal?.throwIfAborted();
  const dirStat = await stat(dir).catch(() => undefined);
  if (!dirStat?.isDirectory())
    throw new InvalidOptionError('dir', `${JSON.stringify(dir)} is not a directory`);

  const entry = await resolveEntry(store, tag, { signal, maxEntrySize, withConfig: true });
  if (entry === undefined) return undefined;
  const { config, layers } = entry;

  const progress: TransferProgress = {
    phase: 'fetch',
    chunksDone: 0,
    chunksTotal: layers.length,
    bytesDone: 0,
    bytesProcessed: 0,
  };
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const staging = await mkdtemp(join(dir, `${SCRATCH_PREFIX}restore-`));
  try {
    const chunks = mapOrdered(
      layers.map((layer, i) => ({ layer, info: config.chunks[i] as EntryConfig['chunks'][number] })),
      concurrency,
      async ({ layer, info }, i) => {
        const data = await fetchChunk(store, codec, layer, info, i, inner.signal);
        knownDigests(store).add(layer.digest);
        progress.chunksDone++;
        progress.bytesDone += layer.size;
        progress.bytesProcessed += data.byteLength;
        options.onProgress?.({ ...progress });
        return data;
      },
      (err) => inner.abort(err),
    );
    const entries = await extractInWorker(staging, chunks, {
      generates,
      keepMtimes: config.archive.mtimes === 'kept',
      signal: inner.signal,
      onFail: (err) => inner.abort(err),
    });
    signal?.throwIfAborted();
    // NOTE: once the swap starts it runs to the end (or rolls back); it is short (renames only).
    await swapIntoPlace(dir, staging, entries, generates);
    await rememberBase(stateDir, dir, store.location, config.task, tag);
    const result: RestoreEntryResult = {
      digest: entry.digest,
      chunksFetched: progress.chunksDone,
      bytesFetched: progress.bytesDone,
      files: entries.filter((e) => e.type !== 'directory').length,
      durationMs: performance.now() - started,
    };
    return result;
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (isMissing(err)) return undefined;
    if (err instanceof TaskCacheError) throw err;
    const code = (err as { code?: unknown })?.code;
    if (code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH') {
      throw new EntryCorruptError(`entry blob failed verification: ${(err as Error).message}`, {
        cause: err,
        digest: (err as { digest?: string }).digest,
      });
    }
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await rm(staging, { recursive: true, force: true });
  }
};

async function fetchChunk(
  store: OciStore,
  codec: WorkerCodec,
  layer: Descriptor,
  info: EntryConfig['chunks'][number],
  index: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  if (layer.size > compressBound(info.size)) {
    throw new EntryCorruptError(
      `chunk ${index} is ${layer.size} bytes compressed, too large for ${info.size} bytes of data`,
      {
        digest: layer.digest,
      },
    );
  }
  // One buffer of the declared size (the verifying reader enforces size and digest); its
  // memory is handed to the codec worker, which checks the uncompressed size and digest.
  const compressed = new Uint8Array(layer.size);
  let pos = 0;
  for await (const p of await store.fetchBlob(layer, { signal })) {
    if (pos + p.byteLength > layer.size) {
      throw new EntryCorruptError(`chunk ${index} is longer than its descriptor says`, {
        digest: layer.digest,
      });
    }
    compressed.set(p, pos);
    pos += p.byteLength;
  }
  signal.throwIfAborted();
  return codecPool().decompress(
    codec,
    compressed.subarray(0, pos),
    info.size,
    info.digest,
    index,
    layer.digest,
  );
}
