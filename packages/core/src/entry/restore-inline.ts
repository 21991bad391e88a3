/**
 * The restore of a small entry on the calling thread (issue 14): no worker thread is started and
 * no worker module loaded. The checks are the worker path's own: the store's verifying reader,
 * each chunk's uncompressed size and sha256 against the config, and the extract worker's
 * `Extractor` (every refusal rule of docs/format.md "Restore safety") writing into the staging
 * directory. Starting the codec and extract workers costs a fresh process more than such an
 * entry's whole restore; large entries keep the worker path (restore.ts).
 */
import { createHash } from 'node:crypto';
import { EntryCorruptError, EntryTooLargeError } from '../errors.js';
import { mapOrdered } from '../internal/ordered.js';
import type { ExtractedEntry } from '../internal/tar-extract.js';
import { getZstdCodec } from '../internal/zstd.js';
import { failureToError } from '../workers/errors.js';
import { Extractor } from '../workers/extractor.js';
import { Failure } from '../workers/failure.js';
import { type Frame, fetchRun, runsOf } from './frames.js';
import type { EntryReader } from './types.js';

/**
 * Default of `inlineBelow`: entries whose archive is smaller than this restore on the
 * calling thread. Measured (docs/benchmarks.md, "Small tasks"): below it a fresh process restores
 * faster without the workers (their start-up alone costs tens of milliseconds); above it the
 * worker path's parallel decompression and extraction win.
 */
export const DEFAULT_INLINE_BELOW = 4 * 1024 * 1024;

/** Options of {@link restoreInline}. */
export interface InlineRestoreOptions {
  codec: 'node' | 'zstd-codec';
  generates: readonly string[];
  keepMtimes: boolean;
  concurrency: number;
  signal: AbortSignal;
  /** Called after each chunk verified (progress). */
  onChunk(frame: Frame, size: number): void;
}

/** Fetches, verifies and extracts the entry's chunks into `staging`; the entries written. */
export async function restoreInline(
  store: EntryReader,
  frames: readonly Frame[],
  staging: string,
  o: InlineRestoreOptions,
): Promise<ExtractedEntry[]> {
  const codec = getZstdCodec(o.codec);
  const x = new Extractor(0, staging, o.generates, o.keepMtimes, () => undefined);
  let digest: string | undefined;
  try {
    // One request per run of adjacent frames (the whole entry is below `inlineBelow`).
    const runs = mapOrdered(runsOf(frames), o.concurrency, async (run) => ({
      run,
      bytes: await fetchRun(store, run, new Uint8Array(run.length), o.signal),
    }));
    for await (const { run, bytes } of runs) {
      let at = 0;
      for (const frame of run.frames) {
        const compressed = bytes.subarray(at, at + frame.length);
        at += frame.length;
        const i = frame.index;
        const data = await codec.decompress(compressed, frame.size).catch((err: unknown) => {
          if (err instanceof EntryTooLargeError || err instanceof EntryCorruptError) throw err;
          throw new EntryCorruptError(`chunk ${i} is not valid zstd`, {
            digest: frame.layer.digest,
            cause: err,
          });
        });
        if (data.byteLength !== frame.size) {
          throw new EntryCorruptError(
            `chunk ${i} decompresses to ${data.byteLength} bytes, the config declares ${frame.size}`,
            { digest: frame.layer.digest },
          );
        }
        const sha = `sha256:${createHash('sha256').update(data).digest('hex')}`;
        if (sha !== frame.digest) {
          throw new EntryCorruptError(
            `chunk ${i} has uncompressed digest ${sha}, the config declares ${frame.digest}`,
            { digest: frame.layer.digest },
          );
        }
        o.onChunk(frame, data.byteLength);
        o.signal.throwIfAborted();
        digest = frame.layer.digest;
        x.write(data);
      }
    }
    digest = undefined;
    return x.end().map((e) => ({
      path: e.path,
      type: e.type,
      mode: e.mode,
      mtime: e.mtimeMs === undefined ? undefined : new Date(e.mtimeMs),
      ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
    }));
  } catch (err) {
    if (err instanceof Failure) throw failureToError(err.failure, digest);
    throw err;
  } finally {
    x.close();
  }
}
