/**
 * The small, composable store capabilities of `@task-cache/oci` (after oras-go's
 * `content.Fetcher` / `Pusher` / `Resolver`). A store is bound to one repository: the
 * registry client's repository handle, an OCI image-layout directory, or core's memory
 * and Redis stores all implement {@link OciStore}. Functions ask for the narrowest
 * capability they need.
 *
 * Spec references: OCI distribution-spec v1.1.1
 * (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md) and image-spec
 * v1.1.1 (https://github.com/opencontainers/image-spec/blob/v1.1.1/descriptor.md).
 */

/** An OCI content descriptor (image-spec v1.1.1 `descriptor.md`). */
export interface Descriptor {
  /** Media type of the referenced content. */
  mediaType: string;
  /** `sha256:<64 lowercase hex>` digest of the referenced bytes. */
  digest: string;
  /** Size of the referenced bytes. */
  size: number;
  /** Optional annotations. */
  annotations?: Record<string, string>;
  /** Artifact type, for manifests that carry one. */
  artifactType?: string;
}

/** Options every async store call accepts. */
export interface RequestOptions {
  /** Aborts the call promptly when it fires. */
  signal?: AbortSignal;
}

/**
 * Bytes to push. A `Uint8Array` or a factory returning a fresh iterable can be replayed
 * (so the request may be retried); a bare `AsyncIterable` is read once and a request streaming
 * it is never retried (the registry client's chunked uploads buffer each chunk, so a chunk of
 * it may be re-sent).
 */
export type BlobBody = Uint8Array | AsyncIterable<Uint8Array> | (() => AsyncIterable<Uint8Array>);

/** Reads a blob; the bytes always come through the shared verifying reader. */
export interface BlobFetcher {
  /**
   * Streams the blob's bytes, verified against `descriptor.size` and `descriptor.digest`
   * as they flow (a mismatch throws `DigestMismatchError`/`SizeMismatchError` and the
   * final piece is never handed on). A missing blob throws an error with code `BLOB_UNKNOWN`.
   */
  fetchBlob(descriptor: Descriptor, options?: RequestOptions): Promise<AsyncIterable<Uint8Array>>;
}

/** Checks whether a blob exists. */
export interface BlobChecker {
  /** `true` when the store has a blob with this digest. */
  blobExists(
    descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
    options?: RequestOptions,
  ): Promise<boolean>;
}

/** Options for {@link BlobPusher.pushBlob}. */
export interface PushBlobOptions extends RequestOptions {
  /** Repositories of the same registry to try a cross-repository mount from first. */
  mountFrom?: string[];
  /**
   * The caller computed `descriptor.digest` from these exact in-memory bytes itself (e.g. while
   * compressing them): the registry client skips its own up-front hash of a `Uint8Array` body.
   * The store still verifies what it receives (the registry hashes every upload; the layout
   * store verifies while writing), so a wrong digest is still refused — only later, as the
   * store's error instead of `DIGEST_MISMATCH` before any request.
   * @default false
   */
  digestVerified?: boolean;
}

/** Writes a blob. */
export interface BlobPusher {
  /** Pushes `body`, which must hash to `descriptor.digest` and be `descriptor.size` bytes. */
  pushBlob(descriptor: Descriptor, body: BlobBody, options?: PushBlobOptions): Promise<void>;
}

/** A fetched manifest: its descriptor and its exact bytes. */
export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
}

/** Reads manifests (image manifests and image indexes). */
export interface ManifestFetcher {
  /**
   * Fetches the manifest a tag or a digest (`sha256:…`) points at, verified against its
   * digest; `undefined` when the tag or digest is unknown (a miss is not an error).
   */
  fetchManifest(reference: string, options?: RequestOptions): Promise<FetchedManifest | undefined>;
}

/** Options for {@link ManifestPusher.pushManifest}. */
export interface PushManifestOptions extends RequestOptions {
  /** Push by this tag instead of by digest (the push is the tag). */
  tag?: string;
}

/** Writes manifests. */
export interface ManifestPusher {
  /**
   * Stores `bytes` byte-exact with `Content-Type: mediaType` and returns its descriptor.
   * A registry answer `MANIFEST_BLOB_UNKNOWN` throws an `OciError` whose `missingDigests`
   * lists the blobs to re-push.
   */
  pushManifest(bytes: Uint8Array, mediaType: string, options?: PushManifestOptions): Promise<Descriptor>;
}

/** Points a tag at an existing manifest. */
export interface Tagger {
  tag(descriptor: Descriptor, tag: string, options?: RequestOptions): Promise<void>;
}

/** Lists tags (optional capability). */
export interface TagLister {
  listTags(options?: RequestOptions): AsyncIterable<string>;
}

/** Deletes manifests by digest (optional capability; registries may refuse with 405). */
export interface ManifestDeleter {
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
}

/** Limits a store declares (optional capability), honoured by callers before they push. */
export interface StoreLimits {
  /** Largest entry (uncompressed bytes) the store accepts. */
  readonly maxEntrySize?: number;
}

/** A store bound to one repository: the required capabilities plus optional ones. */
export interface OciStore
  extends BlobFetcher,
    BlobChecker,
    BlobPusher,
    ManifestFetcher,
    ManifestPusher,
    Tagger {
  /** Human-readable location with credentials removed (for messages and events). */
  readonly location: string;
  /** Limits the store declares, if any. */
  readonly limits?: StoreLimits;
  listTags?: TagLister['listTags'];
  deleteManifest?: ManifestDeleter['deleteManifest'];
  /** Releases sockets, file handles and timers. */
  close?(): Promise<void>;
}
