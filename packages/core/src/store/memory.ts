import {
  type BlobBody,
  BlobUnknownError,
  type Descriptor,
  type FetchedManifest,
  ManifestBlobUnknownError,
  ManifestInvalidError,
  type OciStore,
  type PushBlobOptions,
  type PushManifestOptions,
  type RequestOptions,
  sha256Digest,
  TagInvalidError,
  verifyBytes,
  verifyStream,
} from '@task-cache/oci';

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Name shown in `location` (as in a `memory://NAME` URL). @default 'default' */
  name?: string;
  /**
   * Check, like a registry, that a pushed manifest's config, layers and child manifests exist
   * (answering `MANIFEST_BLOB_UNKNOWN` otherwise). @default true
   */
  checkReferences?: boolean;
}

/**
 * An {@link OciStore} held in memory, with a few extra members for tests (delete a blob,
 * inspect what is stored). Reads go through `@task-cache/oci`'s verifying reader like every
 * other store's.
 */
export interface MemoryStore extends OciStore {
  /** Digests of the blobs held. */
  readonly blobDigests: () => string[];
  /** Tags and the manifest digest each points at. */
  readonly tags: () => Map<string, string>;
  /** Removes a blob (to simulate garbage collection or a lost part); `true` if it existed. */
  deleteBlob(digest: string): boolean;
  /**
   * Replaces a blob's stored bytes without verification (to build tampered stores in tests).
   * The descriptor used to read it still has to match, so a read fails verification.
   */
  corruptBlob(digest: string, bytes: Uint8Array): void;
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
  listTags(options?: RequestOptions): AsyncIterable<string>;
}

async function collect(body: BlobBody, signal: AbortSignal | undefined): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  const source = typeof body === 'function' ? body() : body;
  const parts: Uint8Array[] = [];
  for await (const part of source) {
    signal?.throwIfAborted();
    parts.push(part);
  }
  return Buffer.concat(parts);
}

function referencedDigests(bytes: Uint8Array): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new ManifestInvalidError('manifest is not valid JSON', { cause });
  }
  if (typeof doc !== 'object' || doc === null)
    throw new ManifestInvalidError('manifest is not a JSON object');
  const m = doc as { config?: { digest?: unknown }; layers?: unknown; manifests?: unknown };
  const out: string[] = [];
  const add = (d: unknown) => {
    if (typeof d === 'object' && d !== null && typeof (d as { digest?: unknown }).digest === 'string') {
      out.push((d as { digest: string }).digest);
    }
  };
  add(m.config);
  if (Array.isArray(m.layers)) m.layers.forEach(add);
  if (Array.isArray(m.manifests)) m.manifests.forEach(add);
  return out;
}

/**
 * Creates an in-memory {@link OciStore} for unit tests of cache policies (combine it with
 * {@link countingStore} to assert, e.g., that a cache hit pushed nothing).
 *
 * @example
 * const store = countingStore(createMemoryStore());
 * await saveEntry(store, { ... });
 * expect(store.counts.pushBlob).toBe(0);
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  const name = options.name ?? 'default';
  const checkReferences = options.checkReferences ?? true;
  const blobs = new Map<string, Uint8Array>();
  const manifests = new Map<string, { bytes: Uint8Array; mediaType: string }>();
  const tags = new Map<string, string>();
  const location = `memory://${name}`;

  const store: MemoryStore = {
    location,
    blobDigests: () => [...blobs.keys()],
    tags: () => new Map(tags),
    deleteBlob: (digest) => blobs.delete(digest),
    corruptBlob(digest, bytes) {
      blobs.set(digest, bytes);
    },
    async fetchBlob(descriptor: Descriptor, opts?: RequestOptions) {
      opts?.signal?.throwIfAborted();
      const bytes = blobs.get(descriptor.digest);
      if (bytes === undefined) {
        throw new BlobUnknownError(`blob ${descriptor.digest} unknown to ${location}`, {
          digest: descriptor.digest,
        });
      }
      async function* once() {
        yield bytes as Uint8Array;
      }
      return verifyStream(once(), descriptor, { signal: opts?.signal, location });
    },
    async blobExists(descriptor, opts) {
      opts?.signal?.throwIfAborted();
      return blobs.has(descriptor.digest);
    },
    async pushBlob(descriptor: Descriptor, body: BlobBody, opts?: PushBlobOptions) {
      opts?.signal?.throwIfAborted();
      const bytes = verifyBytes(await collect(body, opts?.signal), descriptor, { location });
      blobs.set(descriptor.digest, Uint8Array.from(bytes));
    },
    async fetchManifest(reference: string, opts?: RequestOptions): Promise<FetchedManifest | undefined> {
      opts?.signal?.throwIfAborted();
      const digest = reference.startsWith('sha256:') ? reference : tags.get(reference);
      if (digest === undefined) return undefined;
      const m = manifests.get(digest);
      if (m === undefined) return undefined;
      const descriptor: Descriptor = { mediaType: m.mediaType, digest, size: m.bytes.byteLength };
      return { descriptor, bytes: verifyBytes(m.bytes, descriptor, { location }) };
    },
    async pushManifest(bytes: Uint8Array, mediaType: string, opts?: PushManifestOptions) {
      opts?.signal?.throwIfAborted();
      if (opts?.tag !== undefined && !TAG_RE.test(opts.tag)) {
        throw new TagInvalidError(`invalid tag ${JSON.stringify(opts.tag)}`);
      }
      if (checkReferences) {
        const missing = referencedDigests(bytes).filter((d) => !blobs.has(d) && !manifests.has(d));
        if (missing.length > 0) {
          throw new ManifestBlobUnknownError(`manifest references blobs unknown to ${location}`, {
            missingDigests: missing,
          });
        }
      }
      const copy = Uint8Array.from(bytes);
      const digest = sha256Digest(copy);
      manifests.set(digest, { bytes: copy, mediaType });
      if (opts?.tag !== undefined) tags.set(opts.tag, digest);
      return { mediaType, digest, size: copy.byteLength };
    },
    async tag(descriptor: Descriptor, tag: string, opts?: RequestOptions) {
      opts?.signal?.throwIfAborted();
      if (!TAG_RE.test(tag)) throw new TagInvalidError(`invalid tag ${JSON.stringify(tag)}`);
      if (!manifests.has(descriptor.digest)) {
        throw new ManifestBlobUnknownError(`manifest ${descriptor.digest} unknown to ${location}`, {
          missingDigests: [descriptor.digest],
        });
      }
      tags.set(tag, descriptor.digest);
    },
    async *listTags(opts?: RequestOptions) {
      opts?.signal?.throwIfAborted();
      yield* [...tags.keys()].sort();
    },
    async deleteManifest(digest: string, opts?: RequestOptions) {
      opts?.signal?.throwIfAborted();
      manifests.delete(digest);
      for (const [t, d] of tags) if (d === digest) tags.delete(t);
    },
  };
  return store;
}
