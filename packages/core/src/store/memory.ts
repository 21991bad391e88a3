import {
  type BlobBody,
  BlobUnknownError,
  checkBlobRange,
  type Descriptor,
  type FetchBlobOptions,
  type FetchedManifest,
  ManifestBlobUnknownError,
  ManifestUnknownError,
  manifestReferences,
  type OciStore,
  type PushBlobOptions,
  type PushManifestOptions,
  parseDigest,
  parseManifestJson,
  parseManifestReference,
  type RequestOptions,
  sha256Digest,
  validateTag,
  verifyBytes,
  verifyStream,
} from '@task-cache/oci';

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Name shown in `location` (as in a `memory://NAME` URL). @default 'default' */
  name?: string;
  /**
   * Check, like a registry, that a pushed manifest's config, layers and child manifests exist
   * (answering `ManifestBlobUnknownError` otherwise). @default true
   */
  checkReferences?: boolean;
}

/**
 * An {@link OciStore} held in memory, with a few extra members for tests (delete a blob,
 * inspect what is stored). Reads go through `@task-cache/oci`'s verifying reader like every
 * other store's, and the store contract of `@task-cache/testkit` runs against it.
 */
export interface MemoryStore extends OciStore {
  /** Digests of the blobs held. */
  readonly blobDigests: () => string[];
  /** Tags and the manifest digest each points at. */
  readonly tags: () => Map<string, string>;
  /** Removes a blob (to simulate garbage collection or a lost part); `true` if it existed. */
  deleteBlob(digest: string): boolean;
  /**
   * Replaces a blob's (or a manifest's) stored bytes without verification (to build tampered
   * stores in tests). The descriptor used to read it still has to match, so a read fails
   * verification.
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
      const manifest = manifests.get(digest);
      if (manifest) manifest.bytes = bytes;
      else blobs.set(digest, bytes);
    },
    async fetchBlob(descriptor: Descriptor, opts?: FetchBlobOptions) {
      parseDigest(descriptor.digest);
      const range = checkBlobRange(opts?.range, descriptor);
      opts?.signal?.throwIfAborted();
      const bytes = blobs.get(descriptor.digest);
      if (bytes === undefined) {
        throw new BlobUnknownError(`blob ${descriptor.digest} unknown to ${location}`, {
          digest: descriptor.digest,
        });
      }
      // A range is a view of the stored bytes (no copy); shorter when a test stored fewer bytes
      // than the descriptor says (corruptBlob), which the length check then refuses.
      const part = range ? bytes.subarray(range.offset, range.offset + range.length) : bytes;
      async function* once() {
        yield part;
      }
      // The digest of a part cannot be checked: a range is checked for its exact length only.
      return verifyStream(once(), range ? { digest: descriptor.digest, size: range.length } : descriptor, {
        signal: opts?.signal,
        location,
        checkDigest: range === undefined && opts?.contentVerified !== true,
      });
    },
    async blobExists(descriptor, opts) {
      parseDigest(descriptor.digest);
      opts?.signal?.throwIfAborted();
      return blobs.has(descriptor.digest);
    },
    async pushBlob(descriptor: Descriptor, body: BlobBody, opts?: PushBlobOptions) {
      parseDigest(descriptor.digest);
      opts?.signal?.throwIfAborted();
      const bytes = verifyBytes(await collect(body, opts?.signal), descriptor, { location });
      blobs.set(descriptor.digest, Uint8Array.from(bytes));
    },
    async fetchManifest(reference: string, opts?: RequestOptions): Promise<FetchedManifest | undefined> {
      const ref = parseManifestReference(reference);
      opts?.signal?.throwIfAborted();
      const digest = ref.kind === 'digest' ? ref.digest : tags.get(ref.tag);
      if (digest === undefined) return undefined;
      const m = manifests.get(digest);
      if (m === undefined) return undefined;
      const descriptor: Descriptor = { mediaType: m.mediaType, digest, size: m.bytes.byteLength };
      return { descriptor, bytes: verifyBytes(m.bytes, descriptor, { location }) };
    },
    async pushManifest(bytes: Uint8Array, mediaType: string, opts?: PushManifestOptions) {
      if (opts?.tag !== undefined) validateTag(opts.tag);
      opts?.signal?.throwIfAborted();
      const doc = parseManifestJson(bytes);
      if (checkReferences) {
        // A registry accepts a manifest whose subject is missing; everything else must be there.
        const missing = manifestReferences(doc)
          .filter((r) => r.kind !== 'subject' && !blobs.has(r.digest) && !manifests.has(r.digest))
          .map((r) => r.digest);
        if (missing.length > 0) {
          throw new ManifestBlobUnknownError(`manifest references blobs unknown to ${location}`, {
            missingDigests: [...new Set(missing)],
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
      validateTag(tag);
      parseDigest(descriptor.digest);
      opts?.signal?.throwIfAborted();
      if (!manifests.has(descriptor.digest)) {
        throw new ManifestUnknownError(
          `cannot tag ${tag}: manifest ${descriptor.digest} unknown to ${location}`,
          {
            digest: descriptor.digest,
          },
        );
      }
      tags.set(tag, descriptor.digest);
    },
    async *listTags(opts?: RequestOptions) {
      opts?.signal?.throwIfAborted();
      yield* [...tags.keys()].sort();
    },
    async deleteManifest(digest: string, opts?: RequestOptions) {
      parseDigest(digest);
      opts?.signal?.throwIfAborted();
      manifests.delete(digest);
      for (const [t, d] of tags) if (d === digest) tags.delete(t);
    },
  };
  return store;
}
