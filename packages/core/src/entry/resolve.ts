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
  ManifestUnknownError,
  NameUnknownError,
  SizeMismatchError,
} from '@task-cache/oci';
import { EntryCorruptError, EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { checkSize, checkTag } from '../internal/validate.js';
import {
  type EntryConfig,
  MAX_CONFIG_SIZE,
  MAX_MANIFEST_SIZE,
  OCI_INDEX_MEDIA_TYPE,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
} from './format.js';
import type { EntryChecker, EntryReader, HasEntry, LookupEntry, ResolvedEntry } from './types.js';

/** Default cap of a restored entry (uncompressed bytes): 16 GiB. */
export const DEFAULT_RESTORE_MAX_ENTRY = 16 * 1024 * 1024 * 1024;

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
): Promise<ResolvedManifests | undefined> {
  const top = await store.fetchManifest(tag, { signal });
  if (top === undefined) return undefined;
  if (top.bytes.byteLength > MAX_MANIFEST_SIZE)
    throw new EntryCorruptError('manifest is larger than 4 MiB', { digest: top.descriptor.digest });
  const doc = parseJson(top.bytes, 'manifest');
  const isIndex =
    doc.mediaType === OCI_INDEX_MEDIA_TYPE || (doc.mediaType === undefined && Array.isArray(doc.manifests));
  const manifests = [];
  if (isIndex) {
    for (const child of parseIndex(doc)) {
      const m = await store.fetchManifest(child.digest, { signal });
      if (m === undefined) return undefined;
      if (m.bytes.byteLength > MAX_MANIFEST_SIZE)
        throw new EntryCorruptError('manifest is larger than 4 MiB', { digest: child.digest });
      manifests.push(parseManifest(parseJson(m.bytes, `child manifest ${child.digest}`)));
    }
  } else {
    manifests.push(parseManifest(doc));
  }
  const first = manifests[0];
  if (first === undefined) throw new EntryCorruptError('entry has no manifests');
  const configDescriptor = first.config;
  if (manifests.some((m) => m.config.digest !== configDescriptor.digest)) {
    throw new EntryCorruptError('the manifests of an index entry reference different configs');
  }
  return {
    digest: top.descriptor.digest,
    configDescriptor,
    layers: manifests.flatMap((m) => m.layers),
    annotations: stringAnnotations(doc.annotations),
  };
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
  options: { signal?: AbortSignal | undefined; maxEntrySize: number },
): Promise<ResolvedEntry | undefined> {
  const { signal } = options;
  const manifests = await resolveManifests(store, tag, signal);
  if (manifests === undefined) return undefined;
  const { configDescriptor, layers } = manifests;
  if (configDescriptor.size > MAX_CONFIG_SIZE)
    throw new EntryCorruptError(`config is larger than ${MAX_CONFIG_SIZE} bytes`);
  let configBytes: Buffer;
  try {
    configBytes = await readAll(await store.fetchBlob(configDescriptor, { signal }), MAX_CONFIG_SIZE);
  } catch (err) {
    if (isMissing(err)) return undefined;
    if (isVerificationFailure(err)) throw corruptBlob(err);
    throw err;
  }
  const config: EntryConfig = parseConfig(parseJson(configBytes, 'config'), layers, options.maxEntrySize);
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
  options.signal?.throwIfAborted();
  try {
    return await resolveEntry(store, tag, { signal: options.signal, maxEntrySize });
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
