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

/** Options for {@link BlobFetcher.fetchBlob}. */
export interface FetchBlobOptions extends RequestOptions {
  /**
   * The caller proves the content by other means before using it, so the reader checks only the
   * size and skips hashing the bytes: one hash per byte instead of two. Example: core's restore,
   * whose config (itself verified by its digest) lists each chunk's uncompressed sha256, which it
   * checks after decompressing; a blob that decompresses to those bytes is the right content
   * whatever its compressed digest. Never set it for bytes used as they are. A store may ignore
   * it (and verify the digest anyway).
   * @default false
   */
  contentVerified?: boolean;
  /**
   * Only these bytes of the blob: `length` bytes from byte `offset` (a registry is sent
   * `Range: bytes=offset-(offset+length-1)`; a registry that answers `200` with the whole blob is
   * read from `offset` and the rest is not downloaded). The digest of a part cannot be checked, so
   * a ranged read checks only that exactly `length` bytes arrive: the caller proves the content
   * (as with `contentVerified`). `offset + length` must not exceed `descriptor.size`
   * (`InvalidOptionError` naming `range`, before any request). Example: core's
   * format v2 reads the frames it needs out of a pack layer.
   * @default the whole blob
   */
  range?: BlobRange;
}

/** A byte range of a blob (see {@link FetchBlobOptions.range}). */
export interface BlobRange {
  /** First byte, from 0. */
  offset: number;
  /** Number of bytes, at least 1. */
  length: number;
}

/** Reads a blob; the bytes always come through the shared verifying reader. */
export interface BlobFetcher {
  /**
   * Streams the blob's bytes, verified against `descriptor.size` and `descriptor.digest`
   * as they flow (a mismatch throws `DigestMismatchError`/`SizeMismatchError` and the
   * final piece is never handed on; with `contentVerified`, the size only). A missing blob
   * throws `BlobUnknownError` from this call.
   */
  fetchBlob(descriptor: Descriptor, options?: FetchBlobOptions): Promise<AsyncIterable<Uint8Array>>;
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
   * Fetches the manifest a tag or a digest points at, verified against its digest; `undefined`
   * when the tag or digest is unknown (a miss is not an error). A reference with a `:` is a digest
   * of any algorithm (`sha256:…`, `sha512:…`); a malformed one or an unsupported algorithm throws
   * `DigestInvalidError`, an invalid tag `TagInvalidError`.
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
   * Stores `bytes` byte-exact with `Content-Type: mediaType` and returns its descriptor
   * (pushing the same bytes again is harmless). Bytes that are not a JSON object throw
   * `ManifestInvalidError`. A manifest whose config, layers or child manifests (see
   * `manifestReferences`) the store lacks throws `ManifestBlobUnknownError` whose
   * `missingDigests` lists them; a missing `subject` is accepted.
   */
  pushManifest(bytes: Uint8Array, mediaType: string, options?: PushManifestOptions): Promise<Descriptor>;
}

/** Points a tag at an existing manifest. */
export interface Tagger {
  /**
   * Points `tag` at the manifest `descriptor` names (moving it if it pointed elsewhere). A
   * manifest the store does not have throws `ManifestUnknownError`.
   */
  tag(descriptor: Descriptor, tag: string, options?: RequestOptions): Promise<void>;
}

/** Lists tags (optional capability). */
export interface TagLister {
  /** Every tag once, in lexical (code-unit) order, as distribution returns them; none for an empty store. */
  listTags(options?: RequestOptions): AsyncIterable<string>;
}

/** Deletes manifests by digest (optional capability; registries may refuse with 405). */
export interface ManifestDeleter {
  /**
   * Deletes the manifest and every tag pointing at it. Deleting a manifest that is not there is
   * not an error (the outcome is the same). A registry that forbids deletes throws
   * `UnsupportedError`.
   */
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
}

/**
 * Limits a store declares (optional capability). A store with a limit refuses content above it
 * with `StoreLimitError` before storing anything; callers read the limits to skip such work early.
 */
export interface StoreLimits {
  /**
   * Largest blob the store accepts, in bytes (and, for core's run, the largest entry it saves
   * there). `undefined`: no limit.
   */
  readonly maxEntrySize?: number;
}

/**
 * A store bound to one repository: the required capabilities plus optional ones. The optional
 * capabilities are declared members, never guessed: `limits`, `listTags`, `deleteManifest`,
 * `close`. The behaviour every implementation shares (unknown manifests, deletes of missing ones,
 * digest vs tag references, tag order, limits, verification, aborts) is pinned by the store
 * contract suite (`storeContract` in `@task-cache/testkit`).
 */
/**
 * What a registry showed it supports, from its answers to reads (see `probeCapabilities`). A
 * capability the registry's answers said nothing about is absent.
 */
export interface RegistryCapabilities {
  /** `GET` of a blob honours `Range` (answers `206`). */
  rangeRequests?: boolean;
  /** The OCI 1.1 referrers API answers (`GET /v2/<name>/referrers/<digest>`). */
  referrers?: boolean;
  /** The TLS endpoint offers HTTP/2 by ALPN (the client itself speaks HTTP/1.1). */
  http2?: boolean;
  /**
   * A monolithic upload (`POST`, then one `PUT` with the blob) was taken (`true`) or refused with
   * 413 (`false`: later blobs go up in chunks at once).
   */
  monolithicUpload?: boolean;
  /**
   * A cross-repository mount was honoured (`201`: `true`), or refused outright (401/403/404 and
   * never a `201`: `false`, later pushes skip the mount request). A `202` (mount not done, upload
   * session given) says nothing: ECR answers it for blobs no manifest references yet.
   */
  crossRepoMount?: boolean;
  /** Largest `PATCH` body the registry took, after refusing a larger one. */
  maxPatchBytes?: number;
  /**
   * Smallest `PATCH` part but the last that the registry takes: its `OCI-Chunk-Min-Length`
   * header, or learned from a refused small part.
   */
  minPatchBytes?: number;
  /** Most layers in one manifest, learned from a refused larger manifest (core records it). */
  maxLayers?: number;
}

export interface OciStore
  extends BlobFetcher,
    BlobChecker,
    BlobPusher,
    ManifestFetcher,
    ManifestPusher,
    Tagger {
  /** Human-readable location with credentials removed (for messages and events). */
  readonly location: string;
  /** Limits the store enforces; absent or empty when it has none. */
  readonly limits?: StoreLimits;
  listTags?: TagLister['listTags'];
  deleteManifest?: ManifestDeleter['deleteManifest'];
  /**
   * Registry stores only: asks the registry what it supports, with reads only (a `Range` of
   * `options.blob`, the referrers API). Absent on stores that are not registries.
   */
  probeCapabilities?(options?: {
    blob?: Pick<Descriptor, 'digest' | 'size'>;
    signal?: AbortSignal;
  }): Promise<RegistryCapabilities>;
  /**
   * Registry stores only: what the registry's answers to this client showed so far (upload
   * form, `PATCH` limits, mounts), including what {@link OciStore.assumeCapabilities} seeded.
   */
  observedCapabilities?(): RegistryCapabilities;
  /**
   * Registry stores only: seeds the client with capabilities remembered from earlier runs, so a
   * limit learned once (a refused monolithic upload, a `PATCH` size, a refused mount) is not
   * learned again by a refusal. Unknown fields are ignored.
   */
  assumeCapabilities?(capabilities: RegistryCapabilities): void;
  /** Releases sockets, file handles and timers. */
  close?(): Promise<void>;
}
