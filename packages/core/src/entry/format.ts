/**
 * The entry format (docs/format.md is the contract): media types, the config document, and
 * strict parsing of what a store hands back. Everything read here is untrusted.
 */
import { type Descriptor, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST } from '@task-cache/oci';
import { EntryCorruptError, EntryTooLargeError } from '../errors.js';
import type { RecordedInputs } from '../explain/inputs.js';

// The standard OCI media types are `@task-cache/oci`'s (its very constants, under the names core's
// entry code reads); the entry's own media types below are core's format and exported once.
export {
  MEDIA_TYPE_IMAGE_INDEX as OCI_INDEX_MEDIA_TYPE,
  MEDIA_TYPE_IMAGE_MANIFEST as OCI_MANIFEST_MEDIA_TYPE,
} from '@task-cache/oci';

/** `artifactType` of an entry's manifest (and of its index in the index form). */
export const ENTRY_ARTIFACT_TYPE = 'application/vnd.task-cache.entry.v1';
/** Media type of an entry's config blob. */
export const ENTRY_CONFIG_MEDIA_TYPE = 'application/vnd.task-cache.entry.config.v1+json';
/** Media type of each chunk layer. */
export const CHUNK_MEDIA_TYPE = 'application/vnd.task-cache.chunk.v1+zstd';
/** `artifactType` of a format version 2 entry's manifest (and index): docs/format.md §11. */
export const ENTRY_ARTIFACT_TYPE_V2 = 'application/vnd.task-cache.entry.v2';
/** Media type of a format version 2 entry's config blob. */
export const ENTRY_CONFIG_MEDIA_TYPE_V2 = 'application/vnd.task-cache.entry.config.v2+json';
/**
 * Media type of a pack layer (format version 2): the zstd frames of several chunks, concatenated
 * (itself a valid multi-frame zstd stream).
 */
export const PACK_MEDIA_TYPE = 'application/vnd.task-cache.pack.v2+zstd';
/** The format versions this code reads (and writes: `formatVersion` of a save). */
export type EntryFormatVersion = 1 | 2;
/**
 * The packing rule of format version 2 (docs/format.md §11.1): a pack closes after a chunk once it
 * holds `minSize` uncompressed bytes and that chunk's first digest byte is below `mask`, or when
 * the next chunk would take it above `maxSize`.
 */
export const PACKING = Object.freeze({
  algorithm: 'digest-mask' as const,
  minSize: 16 * 1024 * 1024,
  maxSize: 64 * 1024 * 1024,
  mask: 32,
});
/**
 * The two forms of an entry (docs/format.md §4–§5): `standard` carries `artifactType` and the
 * entry config media type; `compat` carries neither — the config blob has the OCI image config
 * media type and is also a valid image config — for registries that allowlist media types
 * (GitLab, Quay without general OCI support). Readers accept both without being told which.
 */
export type EntryForm = 'standard' | 'compat';
/** The forms, in the order a writer in `auto` mode tries them. */
export const ENTRY_FORMS: readonly EntryForm[] = ['standard', 'compat'];
/** Media type of the config blob in the compatible form: the OCI image config. */
export const COMPAT_CONFIG_MEDIA_TYPE = MEDIA_TYPE_IMAGE_CONFIG;
/**
 * Annotation marking a manifest or an index in the compatible form as a task-cache entry (the
 * value is {@link ENTRY_ARTIFACT_TYPE}): what `artifactType` says in the standard form.
 */
export const ENTRY_ANNOTATION = 'dev.task-cache.entry';
/**
 * `architecture` and `os` of the compatible form's image config (required by image-spec v1.1.1
 * `config.md`): an entry runs nowhere, and `unknown` is what BuildKit writes for its non-runnable
 * attestation manifests, so no runtime selects it as an image for a platform.
 */
export const COMPAT_PLATFORM = 'unknown';

/**
 * Version of the config document this code writes by default (`formatVersion` of a save); it
 * reads versions 1 and 2.
 */
export const ENTRY_FORMAT_VERSION: EntryFormatVersion = 2;

/** Largest chunk any reader accepts, whatever a config declares. */
export const HARD_MAX_CHUNK_SIZE = 64 * 1024 * 1024;
/** Largest config blob a reader fetches. */
export const MAX_CONFIG_SIZE = 32 * 1024 * 1024;
/** Largest manifest a reader parses (registries cap manifests at 4 MiB). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

/** The entry's config document (`application/vnd.task-cache.entry.config.v1+json`). */
export interface EntryConfig {
  formatVersion: EntryFormatVersion;
  task: string;
  key: string;
  /** RFC 3339 time of the save. */
  created: string;
  producer: { name: string; version: string };
  /** Non-directory entries of the archive (files and symlinks). */
  files: number;
  /** Total uncompressed size of the archive in bytes (sum of `chunks[].size`). */
  size: number;
  archive: { format: 'tar'; mtimes: 'zero' | 'kept' };
  chunking: {
    algorithm: 'fastcdc2020';
    avgSize: number;
    minSize: number;
    maxSize: number;
    normalization: number;
    seed: number;
  };
  compression: { algorithm: 'zstd'; level: number };
  /** Version 2: the packing rule the writer used (docs/format.md §11.1). */
  packing?: { algorithm: 'digest-mask'; minSize: number; maxSize: number; mask: number };
  /**
   * One per chunk, in stream order: uncompressed size and sha256 of the uncompressed bytes. In
   * version 1 chunk `i` is layer `i`; in version 2 each names the layer (pack) holding its zstd
   * frame and the frame's byte `offset` and `length` in it.
   */
  chunks: ChunkRef[];
  /** The source files (and their digests) that made the key. */
  sources: Array<{ path: string; digest: string }>;
  /**
   * The canonical input manifest that made the key (task, sources, env names and value digests,
   * tools, commands, platform, extra). Absent in entries saved under a caller's own key and in
   * entries of older writers. Untrusted like the rest: read it through `parseRecordedInputs`.
   */
  inputs?: RecordedInputs;
  /** How long the build that produced the entry took, in milliseconds (absent when unknown). */
  buildDurationMs?: number;
}

/** A chunk of an entry's config (docs/format.md §3, §11.2). */
export interface ChunkRef {
  size: number;
  digest: string;
  /** Version 2: index of the manifest layer (pack) holding the chunk's frame. */
  layer?: number;
  /** Version 2: byte offset of the frame in that layer. */
  offset?: number;
  /** Version 2: compressed length of the frame. */
  length?: number;
}

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

function corrupt(message: string, cause?: unknown): EntryCorruptError {
  return new EntryCorruptError(message, { cause });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses JSON bytes into an object or throws {@link EntryCorruptError}. */
export function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (cause) {
    throw corrupt(`${what} is not valid JSON`, cause);
  }
  if (!isObject(doc)) throw corrupt(`${what} is not a JSON object`);
  return doc;
}

/** Validates a descriptor read from a manifest. */
export function parseDescriptor(v: unknown, what: string, mediaType?: string): Descriptor {
  if (!isObject(v)) throw corrupt(`${what} is not a descriptor`);
  if (typeof v.digest !== 'string' || !SHA256_RE.test(v.digest))
    throw corrupt(`${what} has an invalid digest`);
  if (!isSize(v.size)) throw corrupt(`${what} has an invalid size`);
  if (typeof v.mediaType !== 'string') throw corrupt(`${what} has no mediaType`);
  if (mediaType !== undefined && v.mediaType !== mediaType) {
    throw corrupt(`${what} has media type ${JSON.stringify(v.mediaType)}, expected ${mediaType}`);
  }
  return { mediaType: v.mediaType, digest: v.digest, size: v.size };
}

/** A parsed entry manifest (one of an index's children, or the whole entry). */
export interface ParsedManifest {
  form: EntryForm;
  version: EntryFormatVersion;
  config: Descriptor;
  layers: Descriptor[];
}

/**
 * The form of a manifest or index document: `standard` when its `artifactType` is the entry's
 * (version 1 or 2), `compat` when it has no `artifactType` and carries the {@link ENTRY_ANNOTATION}.
 * @throws {EntryCorruptError} for anything else (not a task-cache entry).
 */
export function entryFormOf(doc: Record<string, unknown>, what: 'manifest' | 'index'): EntryForm {
  return entryKindOf(doc, what).form;
}

/** The form and format version of a manifest or index document (see {@link entryFormOf}). */
export function entryKindOf(
  doc: Record<string, unknown>,
  what: 'manifest' | 'index',
): { form: EntryForm; version: EntryFormatVersion } {
  if (doc.artifactType === ENTRY_ARTIFACT_TYPE) return { form: 'standard', version: 1 };
  if (doc.artifactType === ENTRY_ARTIFACT_TYPE_V2) return { form: 'standard', version: 2 };
  const annotations = doc.annotations;
  if (
    doc.artifactType === undefined &&
    isObject(annotations) &&
    annotations[ENTRY_ANNOTATION] === ENTRY_ARTIFACT_TYPE
  ) {
    return { form: 'compat', version: 1 };
  }
  throw corrupt(`${what} is not a task-cache entry (artifactType ${JSON.stringify(doc.artifactType)})`);
}

/** Parses an entry's image manifest, in either form and version. */
export function parseManifest(doc: Record<string, unknown>): ParsedManifest {
  if (doc.schemaVersion !== 2) throw corrupt('manifest schemaVersion is not 2');
  const { form, version } = entryKindOf(doc, 'manifest');
  const config = parseDescriptor(
    doc.config,
    'manifest config',
    form === 'compat'
      ? COMPAT_CONFIG_MEDIA_TYPE
      : version === 2
        ? ENTRY_CONFIG_MEDIA_TYPE_V2
        : ENTRY_CONFIG_MEDIA_TYPE,
  );
  if (!Array.isArray(doc.layers)) throw corrupt('manifest has no layers array');
  const layerType = version === 2 ? PACK_MEDIA_TYPE : CHUNK_MEDIA_TYPE;
  const layers = doc.layers.map((l, i) => parseDescriptor(l, `layer ${i}`, layerType));
  return { form, version, config, layers };
}

/** Parses an entry's image index, in either form: the child manifest descriptors in order. */
export function parseIndex(doc: Record<string, unknown>): Descriptor[] {
  if (doc.schemaVersion !== 2) throw corrupt('index schemaVersion is not 2');
  entryFormOf(doc, 'index');
  if (!Array.isArray(doc.manifests) || doc.manifests.length === 0) throw corrupt('index has no manifests');
  return doc.manifests.map((m, i) => parseDescriptor(m, `index manifest ${i}`, MEDIA_TYPE_IMAGE_MANIFEST));
}

/**
 * The config document of the compatible form: the entry config plus the fields image-spec
 * v1.1.1 `config.md` requires (`architecture`, `os`, `rootfs` with `type: "layers"` and one
 * `diff_ids` entry per chunk — the sha256 of its uncompressed bytes, which is what a DiffID is).
 * Readers ignore the extra fields; {@link parseConfig} checks the entry fields as in the standard form.
 */
export function compatConfig(config: EntryConfig): Record<string, unknown> {
  // `created` (RFC 3339) is already an image config field of the same meaning.
  return {
    architecture: COMPAT_PLATFORM,
    os: COMPAT_PLATFORM,
    config: { Labels: { [ENTRY_ANNOTATION]: ENTRY_ARTIFACT_TYPE } },
    rootfs: { type: 'layers', diff_ids: config.chunks.map((c) => c.digest) },
    ...config,
  };
}

/**
 * Validates a config against its layers and the reader's caps. `version` is the manifest's (its
 * `artifactType`): the config must say the same.
 * @throws {EntryCorruptError} when inconsistent; {@link EntryTooLargeError} above a cap.
 */
export function parseConfig(
  doc: Record<string, unknown>,
  layers: readonly Descriptor[],
  maxEntrySize: number,
  version: EntryFormatVersion = 1,
): EntryConfig {
  if (doc.formatVersion !== version) {
    throw corrupt(
      doc.formatVersion === 1 || doc.formatVersion === 2
        ? `config says format version ${doc.formatVersion}, its manifest version ${version}`
        : `unsupported entry format version ${JSON.stringify(doc.formatVersion)} (this reader knows 1 and 2)`,
    );
  }
  const chunking = doc.chunking;
  if (!isObject(chunking) || !isSize(chunking.maxSize))
    throw corrupt('config has no valid chunking parameters');
  const archive = doc.archive;
  if (!isObject(archive) || (archive.mtimes !== 'zero' && archive.mtimes !== 'kept'))
    throw corrupt('config has no valid archive section');
  if (!isSize(doc.size)) throw corrupt('config has no valid size');
  if (doc.size > maxEntrySize) {
    throw new EntryTooLargeError(`entry is ${doc.size} bytes, above the cap of ${maxEntrySize}`, {
      limit: maxEntrySize,
      size: doc.size,
    });
  }
  if (!Array.isArray(doc.chunks)) throw corrupt('config has no chunks array');
  if (version === 1 && doc.chunks.length !== layers.length) {
    throw corrupt(`config lists ${doc.chunks.length} chunks but the manifest has ${layers.length} layers`);
  }
  if (version === 2) {
    const packing = doc.packing;
    if (!isObject(packing) || typeof packing.algorithm !== 'string')
      throw corrupt('config has no valid packing section');
  }
  const maxChunk = Math.min(chunking.maxSize, HARD_MAX_CHUNK_SIZE);
  let total = 0;
  for (const [i, c] of doc.chunks.entries()) {
    if (!isObject(c) || !isSize(c.size) || typeof c.digest !== 'string' || !SHA256_RE.test(c.digest)) {
      throw corrupt(`config chunk ${i} is invalid`);
    }
    // NOTE: a version 1 chunk is its whole layer; frame fields there were never checked (checkFrames).
    if (version === 1 && (c.layer !== undefined || c.offset !== undefined || c.length !== undefined))
      throw corrupt(`config chunk ${i} names a frame, but a version 1 chunk is its whole layer`);
    if (c.size > maxChunk) {
      throw new EntryTooLargeError(
        `chunk ${i} declares ${c.size} bytes, above the maximum chunk size ${maxChunk}`,
        {
          limit: maxChunk,
          size: c.size,
        },
      );
    }
    total += c.size;
  }
  if (total !== doc.size)
    throw corrupt(`config chunk sizes add up to ${total}, not the declared size ${doc.size}`);
  if (version === 2) checkFrames(doc.chunks as Record<string, unknown>[], layers);
  return doc as unknown as EntryConfig;
}

/**
 * Version 2 (docs/format.md §11.2): every chunk names a layer of the manifest and a frame inside
 * it; frames of one layer are identical (a chunk repeated in the stream) or do not overlap; a
 * frame is no longer than zstd's bound for its chunk; every layer holds at least one frame.
 */
function checkFrames(chunks: readonly Record<string, unknown>[], layers: readonly Descriptor[]): void {
  const byLayer: Array<Array<{ offset: number; length: number; digest: string }>> = layers.map(() => []);
  for (const [i, c] of chunks.entries()) {
    const { layer, offset, length } = c;
    if (!isSize(layer) || layer >= layers.length)
      throw corrupt(
        `config chunk ${i} names layer ${JSON.stringify(layer)}; the manifest has ${layers.length}`,
      );
    if (!isSize(offset) || !isSize(length) || length < 1)
      throw corrupt(`config chunk ${i} has no valid frame offset and length`);
    const pack = layers[layer] as Descriptor;
    if (offset + length > pack.size)
      throw corrupt(
        `config chunk ${i}: frame ${offset}+${length} ends past layer ${layer} (${pack.size} bytes)`,
      );
    if (length > compressBound(c.size as number))
      throw corrupt(`config chunk ${i}: a ${length}-byte frame is too large for ${c.size} bytes of data`);
    (byLayer[layer] as Array<{ offset: number; length: number; digest: string }>).push({
      offset,
      length,
      digest: c.digest as string,
    });
  }
  for (const [l, frames] of byLayer.entries()) {
    if (frames.length === 0) throw corrupt(`layer ${l} holds no chunk of the config`);
    frames.sort((a, b) => a.offset - b.offset || a.length - b.length);
    for (let k = 1; k < frames.length; k++) {
      const prev = frames[k - 1] as (typeof frames)[number];
      const cur = frames[k] as (typeof frames)[number];
      if (cur.offset === prev.offset && cur.length === prev.length && cur.digest === prev.digest) continue;
      if (cur.offset < prev.offset + prev.length)
        throw corrupt(`layer ${l}: frames at ${prev.offset} and ${cur.offset} overlap`);
    }
  }
}

/** Upper bound of a zstd frame holding `size` bytes (ZSTD_compressBound plus slack). */
export function compressBound(size: number): number {
  return size + Math.floor(size / 128) + 128 * 1024;
}
