/**
 * Save: outputs → normalized tar → FastCDC chunks → zstd per chunk → sha256 → exists? → push,
 * streaming with bounded memory (at most `concurrency` chunks in flight). Push order: chunks,
 * config, child manifests, then the manifest or index carrying the tag — the tag is the commit.
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { stat } from 'node:fs/promises';
import { type Descriptor, ManifestBlobUnknownError, type OciStore } from '@task-cache/oci';
import { EntryTooLargeError, InvalidOptionError } from '../errors.js';
import {
  type BaseEntry,
  defaultStateDir,
  loadBase,
  pointerTag,
  recallBase,
  rememberBase,
} from '../internal/base.js';
import { chunkParams } from '../internal/chunk.js';
import { knownDigests } from '../internal/known.js';
import { checkGenerates, checkInt, checkSize, checkString, checkTag } from '../internal/validate.js';
import { getZstdCodec, ZSTD_CODEC_MAX_CHUNK } from '../internal/zstd.js';
import { codecPool } from '../workers/codec-pool.js';
import { packChunks } from '../workers/pack.js';
import { createSlotPool, type Slot } from '../workers/slots.js';
import {
  CHUNK_MEDIA_TYPE,
  compressBound,
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
/** Adaptive existence checks: misses in a row before thinning out, then one check in N. */
const ADAPTIVE_MISSES = 8;
const ADAPTIVE_PROBE_EVERY = 16;

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
  existenceChecks: 'always' | 'adaptive';
  base: string | false | undefined;
  stateDir: string | false;
  pointer: boolean;
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
  if (o.existenceChecks !== undefined && o.existenceChecks !== 'always' && o.existenceChecks !== 'adaptive') {
    throw new InvalidOptionError(
      'existenceChecks',
      `expected "always" or "adaptive", got ${JSON.stringify(o.existenceChecks)}`,
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
    existenceChecks: o.existenceChecks ?? 'adaptive',
    base: o.base === undefined || o.base === false ? o.base : checkTag(o.base, 'base'),
    stateDir:
      o.stateDir === undefined
        ? defaultStateDir()
        : o.stateDir === false
          ? false
          : checkString('stateDir', o.stateDir),
    pointer: o.pointer ?? true,
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
  if (
    getZstdCodec(o.codec).name === 'zstd-codec' &&
    chunkParams(o.avgChunkSize).maxSize > ZSTD_CODEC_MAX_CHUNK
  ) {
    throw new InvalidOptionError(
      'avgChunkSize',
      `at most ${ZSTD_CODEC_MAX_CHUNK / 4} with the zstd-codec codec (chunks reach 4 × the average, and zstd-codec holds at most ${ZSTD_CODEC_MAX_CHUNK} bytes); larger chunks need node:zlib's zstd (Node >= 22.15), got ${o.avgChunkSize}`,
    );
  }
  const dirStat = await stat(o.dir).catch(() => undefined);
  if (!dirStat?.isDirectory())
    throw new InvalidOptionError('dir', `${JSON.stringify(o.dir)} is not a directory`);
  const known = knownDigests(store);
  const base =
    o.base === false
      ? undefined
      : await loadBase(
          store,
          o.base !== undefined
            ? [o.base]
            : [await recallBase(o.stateDir, o.dir, store.location, o.task), pointerTag(o.task)],
          signal,
        );
  let result: Omit<SaveEntryResult, 'durationMs'> & { mediaType: string; size: number };
  for (let attempt = 1; ; attempt++) {
    try {
      // NOTE: a retry after MANIFEST_BLOB_UNKNOWN drops the base: one of its chunks may be the
      // blob the store lost, and only a fresh check finds out which.
      result = await saveOnce(store, o, known, options, attempt === 1 ? base : undefined);
      break;
    } catch (err) {
      const missing = (err as { missingDigests?: unknown }).missingDigests;
      if (!(err instanceof ManifestBlobUnknownError) || attempt >= MAX_ATTEMPTS) throw err;
      // The store lost blobs we believed it had: forget them (all of them when it did not say
      // which) and run the pipeline again, which checks and re-pushes what is missing.
      if (Array.isArray(missing) && missing.length > 0) for (const d of missing) known.delete(String(d));
      else known.clear();
    }
  }
  // The entry is committed. Moving the pointer and remembering the base are best effort: the
  // next save merely finds no base (and compresses everything) if they fail.
  if (o.pointer) {
    await store
      .tag({ mediaType: result.mediaType, digest: result.digest, size: result.size }, pointerTag(o.task), {
        signal,
      })
      .catch(() => {});
  }
  await rememberBase(o.stateDir, o.dir, store.location, o.task, o.tag);
  const { mediaType: _m, size: _s, ...pub } = result;
  return { ...pub, durationMs: performance.now() - started };
};

async function saveOnce(
  store: OciStore,
  o: Normalized,
  known: Set<string>,
  options: SaveEntryOptions,
  base: BaseEntry | undefined,
): Promise<Omit<SaveEntryResult, 'durationMs'> & { mediaType: string; size: number }> {
  const signal = options.signal;
  const codec = getZstdCodec(o.codec).name;
  const pool = codecPool();
  const params = chunkParams(o.avgChunkSize);

  let chunksPushed = 0;
  let bytesPushed = 0;
  let bytesTotal = 0;
  let chunksDone = 0;
  const layers: Array<Descriptor | undefined> = [];
  const chunkInfos: EntryConfig['chunks'] = [];
  const progress = () =>
    options.onProgress?.({ phase: 'push', chunksDone, bytesDone: bytesPushed, bytesProcessed: bytesTotal });

  const transfers = createSlotPool(o.concurrency, 0);
  // Compressed chunks wait for their upload in reused shared-memory slots (the codec worker
  // writes each frame straight into one): no per-chunk buffer crosses threads or becomes garbage.
  const outSlots = createSlotPool(o.concurrency, compressBound(params.maxSize));
  const ensureBlob = async (desc: Descriptor, body: Uint8Array, signal?: AbortSignal): Promise<boolean> => {
    if (known.has(desc.digest)) return false;
    const permit = await transfers.acquire(signal);
    try {
      return await checkAndPush(desc, body, signal);
    } finally {
      permit.release();
    }
  };
  // Adaptive existence checks (see SaveEntryOptions.existenceChecks): misses in a row, and
  // chunks pushed unchecked since checks were thinned out.
  let misses = 0;
  let unchecked = 0;
  const shouldCheck = () => {
    if (o.existenceChecks === 'always' || misses < ADAPTIVE_MISSES) return true;
    return ++unchecked % ADAPTIVE_PROBE_EVERY === 0;
  };
  const checkAndPush = async (desc: Descriptor, body: Uint8Array, signal?: AbortSignal): Promise<boolean> => {
    if (known.has(desc.digest)) return false;
    if (shouldCheck()) {
      if (await store.blobExists(desc, { signal })) {
        known.add(desc.digest);
        misses = 0;
        return false;
      }
      misses++;
    }
    // NOTE: every digest pushed here was computed by this save from these exact bytes (codec
    // worker, or sha256 of the config): the client need not hash them again; the store still does.
    await store.pushBlob(
      desc,
      body,
      o.mountFrom.length > 0
        ? { signal, mountFrom: o.mountFrom, digestVerified: true }
        : { signal, digestVerified: true },
    );
    known.add(desc.digest);
    bytesPushed += desc.size;
    return true;
  };

  // NOTE: the inner controller stops the packer and in-flight chunk work when the pipeline
  // fails part-way (or the caller aborts).
  const inner = new AbortController();
  // NOTE: our own signal, handed to every in-flight request and slot wait (bounded by the
  // concurrency options): no listener-leak warning for it.
  setMaxListeners(0, inner.signal);
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const job = packChunks({
    dir: o.dir,
    generates: o.generates,
    keepMtimes: o.keepMtimes,
    chunking: params,
    slots: pool.size + 2,
    signal: inner.signal,
  });
  // Chunks of this save by uncompressed digest: a repeated chunk is compressed once.
  const byDigest = new Map<string, Promise<Descriptor>>();
  const inflight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  const track = (p: Promise<void>) => {
    const t = p.then(
      () => {
        inflight.delete(t);
      },
      (err) => {
        inflight.delete(t);
        failure ??= { err };
        inner.abort(err);
      },
    );
    inflight.add(t);
  };
  try {
    for await (const c of job.chunks) {
      if (failure !== undefined) {
        c.release();
        break;
      }
      const index = layers.length;
      const size = c.data.byteLength;
      layers.push(undefined);
      chunkInfos.push({ size, digest: c.digest });
      bytesTotal += size;
      if (bytesTotal > o.maxEntrySize) {
        c.release();
        throw new EntryTooLargeError(`outputs exceed maxEntrySize (${o.maxEntrySize} bytes)`, {
          limit: o.maxEntrySize,
          size: bytesTotal,
        });
      }
      // Reuse: the base already stores this chunk (whatever compressed it): no compression,
      // no existence check, no upload.
      const reused = base?.chunks.get(c.digest);
      if (reused !== undefined) {
        c.release();
        layers[index] = reused;
        chunksDone++;
        progress();
        continue;
      }
      const same = byDigest.get(c.digest);
      if (same !== undefined) {
        c.release();
        track(
          same.then((d) => {
            layers[index] = d;
            chunksDone++;
            progress();
          }),
        );
        continue;
      }
      // NOTE: compression runs ahead of uploads while fewer than `concurrency` frames are
      // uploading (`outSlots` holds one frame per transfer), so memory stays bounded.
      while (inflight.size >= 2 * o.concurrency && failure === undefined) await Promise.race(inflight);
      let outSlot: Slot;
      try {
        outSlot = await outSlots.acquire(inner.signal);
      } catch (err) {
        c.release();
        throw err;
      }
      const work = (async () => {
        try {
          let out: { output: Uint8Array; digest: string };
          try {
            inner.signal.throwIfAborted();
            out = await pool.compress(codec, c.data, o.level, outSlot.view);
          } finally {
            c.release();
          }
          const desc: Descriptor = {
            mediaType: CHUNK_MEDIA_TYPE,
            digest: out.digest,
            size: out.output.byteLength,
          };
          if (await ensureBlob(desc, out.output, inner.signal)) chunksPushed++;
          chunksDone++;
          progress();
          return desc;
        } finally {
          outSlot.release();
        }
      })();
      work.catch(() => {});
      byDigest.set(c.digest, work);
      track(
        work.then((d) => {
          layers[index] = d;
        }),
      );
    }
    await Promise.all(inflight);
    if (failure !== undefined) throw failure.err;
  } catch (err) {
    inner.abort(err);
    await Promise.allSettled(inflight);
    throw failure !== undefined && !(signal?.aborted ?? false) ? failure.err : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  signal?.throwIfAborted();
  const packed = { stats: job.stats };

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

  const allLayers = layers as Descriptor[];
  let top: Descriptor;
  if (allLayers.length <= o.layerCap) {
    const bytes = json(manifestOf(allLayers));
    top = await store.pushManifest(bytes, OCI_MANIFEST_MEDIA_TYPE, { tag: o.tag, signal });
    bytesPushed += bytes.byteLength;
  } else {
    const children: Descriptor[] = [];
    for (let i = 0; i < allLayers.length; i += o.layerCap) {
      const bytes = json(manifestOf(allLayers.slice(i, i + o.layerCap)));
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
    mediaType: top.mediaType,
    size: top.size,
    chunksTotal: layers.length,
    chunksPushed,
    bytesTotal,
    bytesPushed,
    files: packed.stats.files,
  };
}
