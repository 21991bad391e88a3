/**
 * Save: outputs → normalized tar → FastCDC chunks → zstd per chunk → sha256 → exists? → push,
 * streaming with bounded memory (at most `concurrency` chunks in flight). Push order: chunks,
 * config, child manifests, then the manifest or index carrying the tag — the tag is the commit.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { Descriptor, OciStore } from '@task-cache/oci';
import { EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { chunk, chunkParams } from '../internal/chunk.js';
import { knownDigests } from '../internal/known.js';
import { mapOrdered } from '../internal/ordered.js';
import { listOutputs } from '../internal/outputs.js';
import { packOutputs } from '../internal/tar-pack.js';
import { checkGenerates, checkInt, checkSize, checkString, checkTag } from '../internal/validate.js';
import { getZstdCodec } from '../internal/zstd.js';
import {
  CHUNK_MEDIA_TYPE,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_FORMAT_VERSION,
  type EntryConfig,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
} from './format.js';
import type { SaveEntry, SaveEntryOptions, SaveEntryResult } from './types.js';

const PRODUCER = { name: '@task-cache/core', version: '0.1.0' };
/** Attempts of the whole push when the store answers `MANIFEST_BLOB_UNKNOWN`. */
const MAX_ATTEMPTS = 3;

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

interface Normalized {
  dir: string;
  generates: readonly string[];
  tag: string;
  task: string;
  key: string;
  sources: Array<{ path: string; digest: string }>;
  keepMtimes: boolean;
  level: number;
  avgChunkSize: number;
  layerCap: number;
  maxEntrySize: number;
  concurrency: number;
  codec: 'auto' | 'node' | 'zstd-codec';
  mountFrom: string[];
}

function normalize(o: SaveEntryOptions): Normalized {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('options', 'must be an object');
  const avg = checkInt('avgChunkSize', o.avgChunkSize, 1024 * 1024, 256, 8 * 1024 * 1024);
  if ((avg & (avg - 1)) !== 0)
    throw new InvalidOptionError('avgChunkSize', `must be a power of two, got ${avg}`);
  if (o.codec !== undefined && !['auto', 'node', 'zstd-codec'].includes(o.codec)) {
    throw new InvalidOptionError(
      'codec',
      `expected "auto", "node" or "zstd-codec", got ${JSON.stringify(o.codec)}`,
    );
  }
  return {
    dir: checkString('dir', o.dir),
    generates: checkGenerates(o.generates),
    tag: checkTag(o.tag),
    task: checkString('task', o.task),
    key: checkString('key', o.key),
    sources: (o.sources ?? []).map((s) => ({ path: s.path, digest: s.digest })),
    keepMtimes: o.keepMtimes ?? false,
    level: checkInt('compressionLevel', o.compressionLevel, 3, 1, 22),
    avgChunkSize: avg,
    layerCap: checkInt('layerCap', o.layerCap, 500, 1, 10_000),
    maxEntrySize: checkSize('maxEntrySize', o.maxEntrySize, Number.POSITIVE_INFINITY),
    concurrency: checkInt('concurrency', o.concurrency, 8, 1, 256),
    codec: o.codec ?? 'auto',
    mountFrom: o.mountFrom ?? [],
  };
}

/**
 * Saves the outputs of `options.dir` matching `options.generates` as a chunk-deduplicated
 * entry tagged `options.tag` (format: docs/format.md). Chunks already in the store are not
 * uploaded again. The tag is pushed last, so a failure or an abort leaves no visible entry.
 *
 * @throws {InvalidOptionError} for bad options; {@link EntryTooLargeError} above `maxEntrySize`;
 * `EntryOutputsError` for outputs an entry cannot hold; store errors (`OciError`) as they come.
 */
export const saveEntry: SaveEntry = async (store, options) => {
  const started = performance.now();
  const o = normalize(options);
  const signal = options.signal;
  signal?.throwIfAborted();
  const dirStat = await stat(o.dir).catch(() => undefined);
  if (!dirStat?.isDirectory())
    throw new InvalidOptionError('dir', `${JSON.stringify(o.dir)} is not a directory`);
  const known = knownDigests(store);
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await saveOnce(store, o, known, options);
      return { ...result, durationMs: performance.now() - started };
    } catch (err) {
      const missing = (err as { code?: unknown; missingDigests?: unknown }).missingDigests;
      if ((err as { code?: unknown }).code !== 'MANIFEST_BLOB_UNKNOWN' || attempt >= MAX_ATTEMPTS) throw err;
      // The store lost blobs we believed it had: forget them (all of them when it did not say
      // which) and run the pipeline again, which checks and re-pushes what is missing.
      if (Array.isArray(missing) && missing.length > 0) for (const d of missing) known.delete(String(d));
      else known.clear();
    }
  }
};

async function saveOnce(
  store: OciStore,
  o: Normalized,
  known: Set<string>,
  options: SaveEntryOptions,
): Promise<Omit<SaveEntryResult, 'durationMs'>> {
  const signal = options.signal;
  const codec = getZstdCodec(o.codec);
  const params = chunkParams(o.avgChunkSize);
  const outputs = await listOutputs(o.dir, o.generates, signal);
  const packed = packOutputs(o.dir, outputs, { keepMtimes: o.keepMtimes, signal });

  let chunksPushed = 0;
  let bytesPushed = 0;
  let bytesTotal = 0;
  let chunksDone = 0;
  const layers: Descriptor[] = [];
  const chunkInfos: EntryConfig['chunks'] = [];
  const progress = () =>
    options.onProgress?.({ phase: 'push', chunksDone, bytesDone: bytesPushed, bytesProcessed: bytesTotal });

  const ensureBlob = async (desc: Descriptor, body: Uint8Array, signal?: AbortSignal): Promise<boolean> => {
    if (known.has(desc.digest)) return false;
    if (await store.blobExists(desc, { signal })) {
      known.add(desc.digest);
      return false;
    }
    await store.pushBlob(
      desc,
      body,
      o.mountFrom.length > 0 ? { signal, mountFrom: o.mountFrom } : { signal },
    );
    known.add(desc.digest);
    bytesPushed += desc.size;
    return true;
  };

  // NOTE: the inner controller stops in-flight chunk work when the pipeline fails part-way.
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const results = mapOrdered(
      chunk(packed.stream, params, signal),
      o.concurrency,
      async (c) => {
        inner.signal.throwIfAborted();
        const data = c.data;
        bytesTotal += data.byteLength;
        if (bytesTotal > o.maxEntrySize) {
          throw new EntryTooLargeError(`outputs exceed maxEntrySize (${o.maxEntrySize} bytes)`, {
            limit: o.maxEntrySize,
            size: bytesTotal,
          });
        }
        const uncompressed = sha256(data);
        const compressed = await codec.compress(data, o.level);
        const desc: Descriptor = {
          mediaType: CHUNK_MEDIA_TYPE,
          digest: sha256(compressed),
          size: compressed.byteLength,
        };
        const pushed = await ensureBlob(desc, compressed, inner.signal);
        if (pushed) chunksPushed++;
        chunksDone++;
        progress();
        return { desc, info: { size: data.byteLength, digest: uncompressed } };
      },
      (err) => inner.abort(err),
    );
    for await (const r of results) {
      layers.push(r.desc);
      chunkInfos.push(r.info);
    }
  } catch (err) {
    inner.abort(err);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  signal?.throwIfAborted();

  const config: EntryConfig = {
    formatVersion: ENTRY_FORMAT_VERSION,
    task: o.task,
    key: o.key,
    created: new Date().toISOString(),
    producer: PRODUCER,
    files: packed.stats.files,
    size: bytesTotal,
    archive: { format: 'tar', mtimes: o.keepMtimes ? 'kept' : 'zero' },
    chunking: { algorithm: 'fastcdc2020', ...params },
    compression: { algorithm: 'zstd', level: o.level },
    chunks: chunkInfos,
    sources: o.sources,
  };
  const configBytes = json(config);
  const configDesc: Descriptor = {
    mediaType: ENTRY_CONFIG_MEDIA_TYPE,
    digest: sha256(configBytes),
    size: configBytes.byteLength,
  };
  await ensureBlob(configDesc, configBytes, signal);

  const annotations = { 'org.opencontainers.image.created': config.created, 'dev.task-cache.task': o.task };
  const manifestOf = (group: Descriptor[]) => ({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: ENTRY_ARTIFACT_TYPE,
    config: configDesc,
    layers: group,
    annotations,
  });

  let top: Descriptor;
  if (layers.length <= o.layerCap) {
    const bytes = json(manifestOf(layers));
    top = await store.pushManifest(bytes, OCI_MANIFEST_MEDIA_TYPE, { tag: o.tag, signal });
    bytesPushed += bytes.byteLength;
  } else {
    const children: Descriptor[] = [];
    for (let i = 0; i < layers.length; i += o.layerCap) {
      const bytes = json(manifestOf(layers.slice(i, i + o.layerCap)));
      const d = await store.pushManifest(bytes, OCI_MANIFEST_MEDIA_TYPE, { signal });
      bytesPushed += bytes.byteLength;
      children.push({
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        digest: d.digest,
        size: d.size,
        artifactType: ENTRY_ARTIFACT_TYPE,
      });
    }
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX_MEDIA_TYPE,
      artifactType: ENTRY_ARTIFACT_TYPE,
      manifests: children,
      annotations,
    };
    const bytes = json(index);
    top = await store.pushManifest(bytes, OCI_INDEX_MEDIA_TYPE, { tag: o.tag, signal });
    bytesPushed += bytes.byteLength;
  }
  return {
    digest: top.digest,
    chunksTotal: layers.length,
    chunksPushed,
    bytesTotal,
    bytesPushed,
    files: packed.stats.files,
  };
}
