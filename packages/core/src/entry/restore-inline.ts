/**
 * The restore of a small entry on the calling thread (issue 14): no worker thread is started and
 * no worker module loaded. The checks are the worker path's own: the store's verifying reader,
 * each chunk's uncompressed size and sha256 against the config, and the extract worker's
 * `Extractor` (every refusal rule of docs/format.md "Restore safety") writing into the staging
 * directory. Starting the codec and extract workers costs a fresh process more than such an
 * entry's whole restore; large entries keep the worker path (restore.ts).
 */
import { createHash } from 'node:crypto';
import type { Descriptor } from '@task-cache/oci';
import { EntryCorruptError, EntryTooLargeError } from '../errors.js';
import { mapOrdered } from '../internal/ordered.js';
import type { ExtractedEntry } from '../internal/tar-extract.js';
import { getZstdCodec } from '../internal/zstd.js';
import { failureToError } from '../workers/errors.js';
import { Extractor } from '../workers/extractor.js';
import { Failure } from '../workers/failure.js';
import { compressBound, type EntryConfig } from './format.js';
import type { EntryReader } from './types.js';

/**
 * Default of `inlineBelow`: entries whose archive is smaller than this restore on the
 * calling thread. Measured (docs/benchmarks.md, "Small tasks"): below it a fresh process restores
 * faster without the workers (their start-up alone costs tens of milliseconds); above it the
 * worker path's parallel decompression and extraction win.
 */
export const DEFAULT_INLINE_BELOW = 4 * 1024 * 1024;

type ChunkInfo = EntryConfig['chunks'][number];

/** Options of {@link restoreInline}. */
export interface InlineRestoreOptions {
  codec: 'node' | 'zstd-codec';
  generates: readonly string[];
  keepMtimes: boolean;
  concurrency: number;
  signal: AbortSignal;
  /** Called after each chunk verified (progress). */
  onChunk(layer: Readonly<Descriptor>, size: number): void;
}

/** Fetches, verifies and extracts the entry's chunks into `staging`; the entries written. */
export async function restoreInline(
  store: EntryReader,
  layers: readonly Readonly<Descriptor>[],
  chunks: readonly ChunkInfo[],
  staging: string,
  o: InlineRestoreOptions,
): Promise<ExtractedEntry[]> {
  const codec = getZstdCodec(o.codec);
  const x = new Extractor(0, staging, o.generates, o.keepMtimes, () => undefined);
  let digest: string | undefined;
  try {
    const verified = mapOrdered(
      layers.map((layer, i) => ({ layer, info: chunks[i] as ChunkInfo })),
      o.concurrency,
      async ({ layer, info }, i) => {
        const compressed = await fetchAll(store, layer, info, i, o.signal);
        const data = await codec.decompress(compressed, info.size).catch((err: unknown) => {
          if (err instanceof EntryTooLargeError || err instanceof EntryCorruptError) throw err;
          throw new EntryCorruptError(`chunk ${i} is not valid zstd`, { digest: layer.digest, cause: err });
        });
        if (data.byteLength !== info.size) {
          throw new EntryCorruptError(
            `chunk ${i} decompresses to ${data.byteLength} bytes, the config declares ${info.size}`,
            { digest: layer.digest },
          );
        }
        const sha = `sha256:${createHash('sha256').update(data).digest('hex')}`;
        if (sha !== info.digest) {
          throw new EntryCorruptError(
            `chunk ${i} has uncompressed digest ${sha}, the config declares ${info.digest}`,
            { digest: layer.digest },
          );
        }
        o.onChunk(layer, data.byteLength);
        return { data, layer };
      },
    );
    for await (const { data, layer } of verified) {
      o.signal.throwIfAborted();
      digest = layer.digest;
      x.write(data);
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

/** The chunk's compressed bytes, through the store's verifying reader (size only, see below). */
async function fetchAll(
  store: EntryReader,
  layer: Readonly<Descriptor>,
  info: ChunkInfo,
  index: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  if (layer.size > compressBound(info.size)) {
    throw new EntryCorruptError(
      `chunk ${index} is ${layer.size} bytes compressed, too large for ${info.size} bytes of data`,
      { digest: layer.digest },
    );
  }
  const out = new Uint8Array(layer.size);
  let pos = 0;
  // NOTE: one hash per byte, as on the worker path: the uncompressed sha256 from the (digest-verified)
  // config is checked after decompressing, so the store checks only the compressed size.
  for await (const p of await store.fetchBlob(layer, { signal, contentVerified: true })) {
    if (pos + p.byteLength > layer.size) {
      throw new EntryCorruptError(`chunk ${index} is longer than its descriptor says`, {
        digest: layer.digest,
      });
    }
    out.set(p, pos);
    pos += p.byteLength;
  }
  signal.throwIfAborted();
  return out.subarray(0, pos);
}
