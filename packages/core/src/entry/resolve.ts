import {
  BlobUnknownError,
  type Descriptor,
  ManifestUnknownError,
  NameUnknownError,
  type OciStore,
} from '@task-cache/oci';
import { EntryCorruptError } from '../errors.js';
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
import type { HasEntry } from './types.js';

/** A resolved entry: the tagged digest, its config and every chunk layer in stream order. */
export interface ResolvedEntry {
  digest: string;
  config: EntryConfig;
  configDescriptor: Descriptor;
  layers: Descriptor[];
}

/** `true` for the store errors that mean "this part is not there" (a miss, not a failure). */
export function isMissing(err: unknown): boolean {
  return (
    err instanceof BlobUnknownError || err instanceof ManifestUnknownError || err instanceof NameUnknownError
  );
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

/**
 * Resolves `tag` to its manifest (or index and child manifests) and config, all validated.
 * `undefined` when the tag, a child manifest or the config is missing.
 * @throws {EntryCorruptError} for malformed or inconsistent documents.
 */
export async function resolveEntry(
  store: OciStore,
  tag: string,
  options: { signal?: AbortSignal; maxEntrySize: number; withConfig: boolean },
): Promise<ResolvedEntry | undefined> {
  const { signal } = options;
  const top = await store.fetchManifest(tag, { signal });
  if (top === undefined) return undefined;
  if (top.bytes.byteLength > MAX_MANIFEST_SIZE)
    throw new EntryCorruptError('manifest is larger than 4 MiB', { digest: top.descriptor.digest });
  const doc = parseJson(top.bytes, 'manifest');
  const isIndex =
    doc.mediaType === OCI_INDEX_MEDIA_TYPE || (doc.mediaType === undefined && Array.isArray(doc.manifests));
  const manifests = isIndex
    ? await (async () => {
        const out = [];
        for (const child of parseIndex(doc)) {
          const m = await store.fetchManifest(child.digest, { signal });
          if (m === undefined) return undefined;
          if (m.bytes.byteLength > MAX_MANIFEST_SIZE)
            throw new EntryCorruptError('manifest is larger than 4 MiB', { digest: child.digest });
          out.push(parseManifest(parseJson(m.bytes, `child manifest ${child.digest}`)));
        }
        return out;
      })()
    : [parseManifest(doc)];
  if (manifests === undefined) return undefined;
  const first = manifests[0];
  if (first === undefined) throw new EntryCorruptError('entry has no manifests');
  const configDescriptor = first.config;
  if (manifests.some((m) => m.config.digest !== configDescriptor.digest)) {
    throw new EntryCorruptError('the manifests of an index entry reference different configs');
  }
  const layers = manifests.flatMap((m) => m.layers);
  if (!options.withConfig) {
    return {
      digest: top.descriptor.digest,
      config: undefined as unknown as EntryConfig,
      configDescriptor,
      layers,
    };
  }
  if (configDescriptor.size > MAX_CONFIG_SIZE)
    throw new EntryCorruptError(`config is larger than ${MAX_CONFIG_SIZE} bytes`);
  let configBytes: Buffer;
  try {
    configBytes = await readAll(await store.fetchBlob(configDescriptor, { signal }), MAX_CONFIG_SIZE);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  const config = parseConfig(parseJson(configBytes, 'config'), layers, options.maxEntrySize);
  return { digest: top.descriptor.digest, config, configDescriptor, layers };
}

/**
 * `true` when a complete entry is tagged `tag`: the manifest (and every child manifest of an
 * index form) and the config are present. Chunks are not checked (a HEAD per chunk would cost
 * more than it saves; a chunk lost later makes the restore a miss).
 */
export const hasEntry: HasEntry = async (store, tag, options = {}) => {
  try {
    const entry = await resolveEntry(store, tag, {
      signal: options.signal,
      maxEntrySize: Number.POSITIVE_INFINITY,
      withConfig: false,
    });
    if (entry === undefined) return false;
    return await store.blobExists(entry.configDescriptor, { signal: options.signal });
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
};
