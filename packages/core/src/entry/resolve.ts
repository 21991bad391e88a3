/**
 * Resolving an entry: tag → manifest (or index and child manifests) → config, all validated.
 * `lookupEntry` hands the result to `restoreEntry({ entry })`, so a cache hit reads the manifest
 * and the config once (issue 13: lookup and restore each resolved the entry, a hit cost two
 * manifest GETs plus a HEAD and a GET of the config).
 */
import {
  BlobUnknownError,
  type Descriptor,
  DigestMismatchError,
  ManifestInvalidError,
  ManifestUnknownError,
  NameUnknownError,
  SizeMismatchError,
} from '@task-cache/oci';
import { EntryCorruptError, EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { checkSize, checkTag } from '../internal/validate.js';
import {
  type EntryConfig,
  type EntryFormatVersion,
  entryKindOf,
  MAX_CONFIG_SIZE,
  MAX_MANIFEST_SIZE,
  OCI_INDEX_MEDIA_TYPE,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
} from './format.js';
import type {
  EntryChecker,
  EntryLimits,
  EntryReader,
  HasEntry,
  LookupEntry,
  ResolvedEntry,
} from './types.js';

/** Default cap of a restored entry (uncompressed bytes): 16 GiB. */
export const DEFAULT_RESTORE_MAX_ENTRY = 16 * 1024 * 1024 * 1024;

/** {@link EntryLimits} with every default filled in. */
export type ResolvedLimits = Required<EntryLimits>;

/** The default {@link EntryLimits}. */
export const DEFAULT_ENTRY_LIMITS: ResolvedLimits = Object.freeze({
  maxManifestBytes: MAX_MANIFEST_SIZE,
  maxConfigBytes: MAX_CONFIG_SIZE,
  maxIndexChildren: 256,
  maxLayers: 100_000,
});

/** Validates `limits` (each a positive integer) and fills in the defaults. */
export function checkLimits(limits: EntryLimits | undefined, prefix = 'limits.'): ResolvedLimits {
  if (limits === undefined) return DEFAULT_ENTRY_LIMITS;
  if (typeof limits !== 'object' || limits === null)
    throw new InvalidOptionError(prefix.slice(0, -1), 'must be an object');
  const out = { ...DEFAULT_ENTRY_LIMITS };
  for (const k of Object.keys(DEFAULT_ENTRY_LIMITS) as (keyof ResolvedLimits)[]) {
    out[k] = checkSize(`${prefix}${k}`, limits[k], DEFAULT_ENTRY_LIMITS[k]);
    if (out[k] < 1) throw new InvalidOptionError(`${prefix}${k}`, 'must be at least 1');
  }
  return out;
}

function tooLarge(what: string, size: number, limit: number, name: string, digest?: string) {
  return new EntryTooLargeError(`${what} (${size}) is above ${name} (${limit}); not fetched`, {
    limit,
    size,
    ...(digest ? { digest } : {}),
  });
}

/** `true` for the store errors that mean "this part is not there" (a miss, not a failure). */
export function isMissing(err: unknown): boolean {
  return (
    err instanceof BlobUnknownError || err instanceof ManifestUnknownError || err instanceof NameUnknownError
  );
}

/** `true` when a store's verifying reader refused bytes (wrong digest or size). */
export function isVerificationFailure(err: unknown): boolean {
  return err instanceof DigestMismatchError || err instanceof SizeMismatchError;
}

/** A verification failure of an entry's blob as the entry error the run treats as a bad entry. */
export function corruptBlob(err: unknown): EntryCorruptError {
  return new EntryCorruptError(`entry blob failed verification: ${(err as Error).message}`, {
    cause: err,
    digest: (err as { digest?: string }).digest,
  });
}

async function readAll(source: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of source) {
    n += p.byteLength;
    if (n > max) throw new EntryCorruptError(`blob is larger than ${max} bytes`);
    parts.push(p);
  }
  return Buffer.concat(parts);
}

/** The manifests of an entry: the tagged digest, the config descriptor, every layer in order. */
interface ResolvedManifests {
  digest: string;
  configDescriptor: Descriptor;
  layers: Descriptor[];
  version: EntryFormatVersion;
  annotations: Record<string, string> | undefined;
}

/** The string-valued annotations of an untrusted document (others are dropped). */
function stringAnnotations(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/**
 * Resolves `tag` to its manifest (or index and child manifests), validated.
 * `undefined` when the tag or a child manifest is missing.
 */
async function resolveManifests(
  store: Pick<EntryReader, 'fetchManifest'>,
  tag: string,
  signal: AbortSignal | undefined,
  limits: ResolvedLimits = DEFAULT_ENTRY_LIMITS,
): Promise<ResolvedManifests | undefined> {
  const top = await fetchManifestTyped(store, tag, signal, limits);
  if (top === undefined) return undefined;
  const doc = parseJson(top.bytes, 'manifest');
  const isIndex =
    doc.mediaType === OCI_INDEX_MEDIA_TYPE || (doc.mediaType === undefined && Array.isArray(doc.manifests));
  const manifests = [];
  let layerCount = 0;
  if (isIndex) {
    const children = parseIndex(doc);
    // NOTE (issue 16): every declared count and size is checked before the first child is
    // fetched: 1,500 children of 4 MiB once took 4.3 GB and a V8 out-of-memory.
    if (children.length > limits.maxIndexChildren)
      throw tooLarge(
        'index children',
        children.length,
        limits.maxIndexChildren,
        'maxIndexChildren',
        top.descriptor.digest,
      );
    for (const child of children) {
      if (child.size > limits.maxManifestBytes)
        throw tooLarge(
          'child manifest size',
          child.size,
          limits.maxManifestBytes,
          'maxManifestBytes',
          child.digest,
        );
    }
    for (const child of children) {
      const m = await fetchManifestTyped(store, child.digest, signal, limits);
      if (m === undefined) return undefined;
      const manifest = parseManifest(parseJson(m.bytes, `child manifest ${child.digest}`));
      layerCount += manifest.layers.length;
      if (layerCount > limits.maxLayers)
        throw tooLarge('layer count', layerCount, limits.maxLayers, 'maxLayers', top.descriptor.digest);
      if (manifest.version !== entryKindOf(doc, 'index').version)
        throw new EntryCorruptError(
          'an index entry and its child manifests are of different format versions',
        );
      manifests.push(manifest);
    }
  } else {
    const manifest = parseManifest(doc);
    if (manifest.layers.length > limits.maxLayers)
      throw tooLarge(
        'layer count',
        manifest.layers.length,
        limits.maxLayers,
        'maxLayers',
        top.descriptor.digest,
      );
    manifests.push(manifest);
  }
  const first = manifests[0];
  if (first === undefined) throw new EntryCorruptError('entry has no manifests');
  const configDescriptor = first.config;
  if (manifests.some((m) => m.config.digest !== configDescriptor.digest)) {
    throw new EntryCorruptError('the manifests of an index entry reference different configs');
  }
  if (manifests.some((m) => m.version !== first.version)) {
    throw new EntryCorruptError('the manifests of an index entry are of different format versions');
  }
  return {
    digest: top.descriptor.digest,
    configDescriptor,
    layers: manifests.flatMap((m) => m.layers),
    version: first.version,
    annotations: stringAnnotations(doc.annotations),
  };
}

/**
 * A manifest fetch whose size refusals are entry errors: a store refuses an oversized manifest
 * with its own error (`OCI_ERR_MANIFEST_INVALID` from the registry client); a reader promises
 * `CACHE_ERR_ENTRY_*` (docs/format.md §8).
 */
async function fetchManifestTyped(
  store: Pick<EntryReader, 'fetchManifest'>,
  reference: string,
  signal: AbortSignal | undefined,
  limits: ResolvedLimits,
) {
  let m: Awaited<ReturnType<EntryReader['fetchManifest']>>;
  try {
    m = await store.fetchManifest(reference, { signal });
  } catch (err) {
    if (err instanceof ManifestInvalidError || err instanceof SizeMismatchError)
      throw new EntryCorruptError(`manifest ${reference} refused by the store: ${(err as Error).message}`, {
        cause: err,
      });
    throw err;
  }
  if (m !== undefined && m.bytes.byteLength > limits.maxManifestBytes)
    throw tooLarge(
      'manifest size',
      m.bytes.byteLength,
      limits.maxManifestBytes,
      'maxManifestBytes',
      m.descriptor.digest,
    );
  return m;
}

// NOTE: the entries `lookupEntry` produced. `restoreEntry({ entry })` trusts an entry's parsed
// config only when it is one of these (frozen, so it cannot have changed since it was validated).
const resolved = new WeakSet<object>();

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** `true` when `entry` came from {@link lookupEntry} (or the internal resolve of a base). */
export function isResolvedEntry(entry: unknown): entry is ResolvedEntry {
  return typeof entry === 'object' && entry !== null && resolved.has(entry);
}

/**
 * Resolves `tag` to a complete, validated entry: manifest(s) and config (one manifest GET per
 * manifest, one GET of the config; chunks are not touched). `undefined` on a miss (no such tag,
 * or a child manifest or the config is missing).
 * @throws {EntryCorruptError} for malformed or inconsistent documents or a config failing
 * verification; {@link EntryTooLargeError} above `maxEntrySize`.
 */
export async function resolveEntry(
  store: EntryReader,
  tag: string,
  options: { signal?: AbortSignal | undefined; maxEntrySize: number; limits?: ResolvedLimits },
): Promise<ResolvedEntry | undefined> {
  const { signal } = options;
  const limits = options.limits ?? DEFAULT_ENTRY_LIMITS;
  const manifests = await resolveManifests(store, tag, signal, limits);
  if (manifests === undefined) return undefined;
  const { configDescriptor, layers } = manifests;
  if (configDescriptor.size > limits.maxConfigBytes)
    throw tooLarge(
      'config size',
      configDescriptor.size,
      limits.maxConfigBytes,
      'maxConfigBytes',
      configDescriptor.digest,
    );
  if (Number.isFinite(options.maxEntrySize)) {
    // The chunks are compressed: their sum may exceed the uncompressed size only by zstd's
    // worst-case growth (a few bytes per chunk, well under 1/128 of the data).
    const declared = layers.reduce((n, l) => n + l.size, 0);
    // NOTE: a version 2 entry's packs may also hold frames it does not use — a reused pack is kept
    // while at least half of its bytes are live (docs/format.md §11.4): up to twice its frames.
    const bound =
      (manifests.version === 2 ? 2 : 1) *
      (options.maxEntrySize + Math.ceil(options.maxEntrySize / 128) + layers.length * 1024);
    if (declared > bound)
      throw new EntryTooLargeError(
        `entry chunks (${declared} bytes) are above maxEntrySize (${options.maxEntrySize}); not fetched`,
        { limit: options.maxEntrySize, size: declared, digest: manifests.digest },
      );
  }
  let configBytes: Buffer;
  try {
    configBytes = await readAll(await store.fetchBlob(configDescriptor, { signal }), limits.maxConfigBytes);
  } catch (err) {
    if (isMissing(err)) return undefined;
    if (isVerificationFailure(err)) throw corruptBlob(err);
    throw err;
  }
  const config: EntryConfig = parseConfig(
    parseJson(configBytes, 'config'),
    layers,
    options.maxEntrySize,
    manifests.version,
  );
  const entry: ResolvedEntry = deepFreeze({
    tag,
    digest: manifests.digest,
    config,
    configDescriptor,
    layers,
    ...(manifests.annotations ? { annotations: manifests.annotations } : {}),
  });
  resolved.add(entry);
  return entry;
}

/**
 * Looks `options.tag` up and resolves the entry: manifest(s) and config, fetched once and
 * validated. Hand the result to `restoreEntry(store, { entry, … })`, which then fetches only the
 * chunks: a cache hit costs one manifest GET (per manifest of an index entry), one config GET
 * and the chunk GETs. `undefined` on a miss.
 *
 * @throws {InvalidOptionError} for bad options; {@link EntryCorruptError} /
 * {@link EntryTooLargeError} for a damaged or too large entry; store errors as they come.
 */
export const lookupEntry: LookupEntry = async (store, options) => {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', 'must be an object');
  const tag = checkTag(options.tag);
  const maxEntrySize = checkSize('maxEntrySize', options.maxEntrySize, DEFAULT_RESTORE_MAX_ENTRY);
  const limits = checkLimits(options.limits);
  options.signal?.throwIfAborted();
  try {
    return await resolveEntry(store, tag, { signal: options.signal, maxEntrySize, limits });
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
};

/**
 * Checks an entry handed to `restoreEntry({ entry })` against the restore's own cap.
 * @throws {InvalidOptionError} when it did not come from {@link lookupEntry}.
 */
export function checkResolvedEntry(entry: unknown, maxEntrySize: number): ResolvedEntry {
  if (!isResolvedEntry(entry))
    throw new InvalidOptionError(
      'entry',
      'must be an entry returned by lookupEntry() (it is validated there)',
    );
  if (entry.config.size > maxEntrySize) {
    throw new EntryTooLargeError(`entry is ${entry.config.size} bytes, above the cap of ${maxEntrySize}`, {
      limit: maxEntrySize,
      size: entry.config.size,
    });
  }
  return entry;
}

/**
 * `true` when a complete entry is tagged `tag`: the manifest (and every child manifest of an
 * index form) and the config are present. Chunks are not checked (a HEAD per chunk would cost
 * more than it saves; a chunk lost later makes the restore a miss). To restore what you found,
 * use {@link lookupEntry} instead: it reads the config once for both.
 */
export const hasEntry: HasEntry = async (store: EntryChecker, tag, options = {}) => {
  try {
    const entry = await resolveManifests(store, tag, options.signal);
    if (entry === undefined) return false;
    return await store.blobExists(entry.configDescriptor, { signal: options.signal });
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
};
