/**
 * Contract between the entry data plane (save/restore of one cache entry, `./save.ts`,
 * `./restore.ts`) and the cached run (`../run/*`). Implementations live beside this file.
 */

import type {
  BlobChecker,
  BlobFetcher,
  BlobPusher,
  Descriptor,
  ManifestFetcher,
  ManifestPusher,
  OciStore,
  Tagger,
} from '@task-cache/oci';
import type { RecordedInputs } from '../explain/inputs.js';
import type { SigningPayload } from '../trust/payload.js';
import type { EntryConfig, EntryForm } from './format.js';

/**
 * What reading an entry needs (oras-go style: the narrowest capabilities): manifests and blobs.
 * `location` (a store's redacted location) keys the remembered base of the next save; a reader
 * without one remembers nothing. Every {@link OciStore} is one; a test can pass a small fake.
 */
export type EntryReader = ManifestFetcher & BlobFetcher & { readonly location?: string };

/**
 * What saving an entry needs: reading (the base entry whose chunks are reused), existence
 * checks, pushing blobs and manifests, tagging. `limits`, when the store declares them, are
 * honoured by the cached run; `probeCapabilities`, when present, is asked once a day per registry;
 * `assumeCapabilities`/`observedCapabilities`, when present, carry what a registry's answers
 * showed (upload limits, mounts) from one run to the next through the state dir.
 */
export type EntryWriter = EntryReader &
  BlobChecker &
  BlobPusher &
  ManifestPusher &
  Tagger &
  Pick<OciStore, 'location' | 'limits' | 'probeCapabilities' | 'observedCapabilities' | 'assumeCapabilities'>;

/** What {@link HasEntry} needs: manifests, and an existence check of the config. */
export type EntryChecker = ManifestFetcher & BlobChecker;

/**
 * An entry found by {@link LookupEntry}: the tag, the digest the tag points at, the validated
 * config and every chunk layer in stream order. Deeply frozen; `restoreEntry({ entry })` accepts
 * only entries `lookupEntry` returned.
 */
export interface ResolvedEntry {
  readonly tag: string;
  /** Digest of the manifest (or index) the tag points at. */
  readonly digest: string;
  readonly config: Readonly<EntryConfig>;
  readonly configDescriptor: Readonly<Descriptor>;
  readonly layers: readonly Readonly<Descriptor>[];
  /** Annotations of the tagged manifest (or index), e.g. the signature; absent when none. */
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Options of {@link LookupEntry}. */
export interface LookupEntryOptions {
  /** The entry's tag (the cache key). */
  tag: string;
  /** Treat entries larger than this many uncompressed bytes as too large. @default 17179869184 (16 GiB) */
  maxEntrySize?: number;
  /** Caps checked against what a document declares, before the part it describes is fetched. */
  limits?: EntryLimits;
  signal?: AbortSignal;
}

/**
 * Caps a reader applies to an entry, each checked against what the manifest or index declares
 * BEFORE the part it describes is fetched: an entry above one is refused with
 * `EntryTooLargeError` (`CACHE_ERR_ENTRY_TOO_LARGE`) at flat memory, whatever a registry (or
 * anyone who can push a tag) serves.
 */
export interface EntryLimits {
  /**
   * Largest manifest (or index) accepted.
   * @default 4194304 (4 MiB)
   */
  maxManifestBytes?: number;
  /**
   * Largest entry config accepted.
   * @default 33554432 (32 MiB)
   */
  maxConfigBytes?: number;
  /**
   * Most child manifests of an index entry (an entry has one child per `layerCap` = 500 chunks).
   * @default 256
   */
  maxIndexChildren?: number;
  /**
   * Most layers (chunks) of an entry, over all its manifests.
   * @default 100000
   */
  maxLayers?: number;
}

/** Progress of a push or a restore, for progress bars. */
export interface TransferProgress {
  /** `push` during save, `fetch` during restore. */
  phase: 'push' | 'fetch';
  /** Chunks finished so far / known in total (total is unknown while still packing: `undefined`). */
  chunksDone: number;
  chunksTotal?: number;
  /** Bytes moved over the wire so far (compressed). */
  bytesDone: number;
  /** Uncompressed bytes of the entry processed so far. */
  bytesProcessed: number;
}

/** Options of {@link SaveEntry}. */
export interface SaveEntryOptions {
  /** The task's directory; every output path is relative to it. */
  dir: string;
  /**
   * Globs (relative to `dir`) selecting the outputs, as the task's `generates`. Globs matching
   * the whole task directory (`**`, `*`) or `.git` are refused unless `allowBroadGenerates`.
   */
  generates: readonly string[];
  /**
   * Globs of files never saved even where they match `generates` — pass the task's `sources`
   * (`cache.run()` does). `.git` is never saved.
   * @default []
   */
  protect?: readonly string[];
  /** Accept `generates` globs matching the whole task directory or `.git` (exotic layouts). @default false */
  allowBroadGenerates?: boolean;
  /** The tag to commit the entry under (the cache key). */
  tag: string;
  /** Task name, recorded in the entry's config. */
  task: string;
  /** The cache key, recorded in the entry's config (usually equal to `tag`). */
  key: string;
  /** Source files and their digests that made the key, recorded in the config. */
  sources?: ReadonlyArray<{ path: string; digest: string }>;
  /** The key's input manifest, recorded in the config as `inputs`. @default none recorded */
  inputs?: RecordedInputs;
  /** Duration of the build, recorded in the config as `buildDurationMs`. @default none recorded */
  buildDurationMs?: number;
  /**
   * Signs the entry: called with the signing payload (docs/format.md "Signatures"), returns the
   * manifest annotations to add (see `createSigner`). @default unsigned
   */
  sign?: (payload: SigningPayload) => Record<string, string>;
  /** Keep real mtimes instead of normalizing them. @default false */
  keepMtimes?: boolean;
  /** zstd level. @default 3 */
  compressionLevel?: number;
  /**
   * FastCDC average chunk size in bytes (a power of two); chunks reach 4 × this. With the
   * zstd-codec codec (Node < 22.15) at most 1 MiB: its WebAssembly heap holds 4 MiB chunks.
   * @default 1048576
   */
  avgChunkSize?: number;
  /** Max chunk layers per manifest before the entry becomes an image index. @default 500 */
  layerCap?: number;
  /**
   * Outputs holding fewer than this many bytes of files (counted before packing) are saved on the
   * calling thread: tar, chunking, zstd and hashing inline, by the pack worker's own code, with no
   * worker thread started (a fresh process saves a small entry faster that way). Larger outputs
   * go through the pack and codec workers. Both paths store byte-identical entries. `0` always
   * uses the workers.
   * @default 4194304 (4 MiB)
   */
  inlineBelow?: number;
  /**
   * With {@link SaveEntryOptions.inlineBelow}: outputs of this many entries (files, directories,
   * symlinks) or more go through the workers whatever their size. `0` always uses the workers.
   * @default 500
   */
  inlineFilesBelow?: number;
  /** Refuse entries larger than this many uncompressed bytes. @default Infinity */
  maxEntrySize?: number;
  /** Parallel blob transfers. @default 8 */
  concurrency?: number;
  /** zstd implementation: `node` (node:zlib, Node >= 22.15), `zstd-codec` (WebAssembly), or `auto`. @default 'auto' */
  codec?: 'auto' | 'node' | 'zstd-codec';
  /** Repositories of the same registry to try a cross-repository blob mount from before uploading. @default [] */
  mountFrom?: string[];
  /**
   * When to ask the store whether a new chunk is already there (`HEAD`) before uploading it.
   * `always` asks for every chunk not reused from the base. `adaptive` asks until 8 answers in
   * a row were "no" (typical of a cold save: new content), then asks for one chunk in 16 and
   * goes back to asking for every chunk at the first "yes". A chunk pushed without asking may
   * already have been stored: the registry keeps one copy, only the upload was spent.
   * Reused chunks of the base are never checked either way.
   * @default 'adaptive'
   */
  existenceChecks?: 'always' | 'adaptive';
  /**
   * Tag of the base entry: every chunk whose uncompressed digest the base's config lists reuses
   * the base's stored blob — no compression, no existence check, no upload (docs/format.md
   * "Reuse of stored chunks"). `false` reuses nothing.
   * @default the entry this workspace last saved or restored for `task` (see `stateDir`), else
   * the task's pointer tag `<urlsafe(task)>.latest`
   */
  base?: string | false;
  /**
   * After the commit, move the task's pointer tag `<urlsafe(task)>.latest` to this entry, so a
   * later save with nothing remembered still finds a base. The pointer is a second tag on the
   * same manifest (registry tag-retention rules see it).
   * @default true
   */
  pointer?: boolean;
  /**
   * Directory where core remembers, per task directory, store and task, the last entry saved or
   * restored (the base of the next save). `false` remembers nothing. `createCache()` passes
   * `<its stateDir>/bases`.
   * @default `<defaultCacheDir(process.env)>/bases`
   */
  stateDir?: string | false;
  /**
   * The entry form to write (docs/format.md §4): `standard` (custom `artifactType` and config
   * media type), `compat` (OCI image config media type, no `artifactType`: for registries that
   * allowlist media types, such as GitLab's), or `auto`: `standard`, unless this registry refused
   * it before (remembered under `stateDir` for 7 days); a refusal (`400 MANIFEST_INVALID`, `415`)
   * retries the commit in the compatible form at once, remembers it and calls `onFallback`.
   * A store URL's `?format=` sets this in `createCache()`.
   * @default 'auto'
   */
  format?: 'auto' | 'standard' | 'compat';
  /**
   * The entry format version to write (docs/format.md): `2` stores the chunks' zstd frames in
   * content-defined packs of 16–64 MiB (about 42 blobs per GB instead of ~870, a restore fetching
   * runs of frames with `Range`); `1` stores one blob per chunk, for fleets whose readers predate
   * version 2. Readers read both. The compatible form (`format: 'compat'`, or a registry that
   * refused the standard form) always holds version 1. Across tasks, version 2 deduplicates whole
   * packs (chunks only within the base entry); version 1 deduplicates every chunk.
   * @default 2
   */
  formatVersion?: 1 | 2;
  /** Called once when the registry refused the standard form and the entry was saved in the compatible one. */
  onFallback?: (info: FormFallback) => void;
  /** Called as transfer progresses. */
  onProgress?: (progress: TransferProgress) => void;
  signal?: AbortSignal;
}

/** What {@link SaveEntryOptions.onFallback} receives. */
export interface FormFallback {
  /** The registry (`HOST[:PORT]`) that refused the standard form. */
  registry: string;
  from: 'standard';
  to: 'compat';
  /** The registry's error code (e.g. `MANIFEST_INVALID`). */
  code: string;
}

/** What a save did. */
export interface SaveEntryResult {
  /** Digest of the manifest (or index) the tag now points at. */
  digest: string;
  /** The form the entry was written in. */
  form: EntryForm;
  /** The entry format version written (see `formatVersion`). */
  formatVersion: 1 | 2;
  chunksTotal: number;
  chunksPushed: number;
  /** Blobs (layers) the entry's manifest lists: one per chunk in version 1, packs in version 2. */
  blobsTotal: number;
  /** Uncompressed bytes of the entry. */
  bytesTotal: number;
  /** Compressed bytes actually uploaded (chunks + config + manifests). */
  bytesPushed: number;
  files: number;
  durationMs: number;
}

/** Options of {@link RestoreEntry} besides what to restore. */
export interface RestoreEntryCommonOptions {
  dir: string;
  /**
   * Only paths matching these globs may be written. A restore makes them equal to the entry:
   * files matching `generates` that the entry does not hold are removed (counted in
   * {@link RestoreEntryResult.removed}). Globs matching the whole task directory (`**`, `*`) or
   * `.git` are refused unless `allowBroadGenerates`.
   */
  generates: readonly string[];
  /**
   * Globs of files a restore never writes, replaces or removes, even where they match
   * `generates` — pass the task's `sources` (`cache.run()` does). An entry holding such a path is
   * refused (`CACHE_ERR_ENTRY_REFUSED`). `.git` is always protected.
   * @default []
   */
  protect?: readonly string[];
  /**
   * Accept `generates` globs that match the whole task directory or `.git`, for exotic layouts.
   * The protected paths (`protect`, `.git`) are still never touched.
   * @default false
   */
  allowBroadGenerates?: boolean;
  /** Refuse entries larger than this many uncompressed bytes. @default 17179869184 (16 GiB) */
  maxEntrySize?: number;
  /** Parallel chunk downloads. @default 8 */
  concurrency?: number;
  /** zstd implementation used to decompress (either reads what both write). @default 'auto' */
  codec?: 'auto' | 'node' | 'zstd-codec';
  /**
   * Where to remember the restored entry as the base of this workspace's next save of the task
   * (see {@link SaveEntryOptions.stateDir}). `false` remembers nothing.
   * @default `<defaultCacheDir(process.env)>/bases`
   */
  stateDir?: string | false;
  /**
   * Entries whose uncompressed archive is smaller than this many bytes are restored on the calling
   * thread (no worker thread started: a fresh process restores a small entry faster that way);
   * larger ones by the codec and extract workers. Both paths run the same checks. `0` always uses
   * the workers.
   * @default 4194304 (4 MiB)
   */
  inlineBelow?: number;
  onProgress?: (progress: TransferProgress) => void;
  signal?: AbortSignal;
}

/**
 * Options of {@link RestoreEntry}: the entry's `tag` (resolved by the restore), or an `entry`
 * that {@link LookupEntry} already resolved (the restore then fetches only its chunks).
 */
export type RestoreEntryOptions = RestoreEntryCommonOptions &
  (
    | {
        /** The entry's tag. */
        tag: string;
        entry?: undefined;
      }
    | {
        /** An entry `lookupEntry()` returned (from the same store). */
        entry: ResolvedEntry;
        tag?: undefined;
      }
  );

/** What a restore did. */
export interface RestoreEntryResult {
  digest: string;
  chunksFetched: number;
  bytesFetched: number;
  files: number;
  /** Files (and symlinks) matching `generates` that the entry does not hold, removed by the restore. */
  removed: number;
  durationMs: number;
}

/** Saves the outputs under `options.tag`; the tag is pushed last. */
export type SaveEntry = (store: EntryWriter, options: SaveEntryOptions) => Promise<SaveEntryResult>;
/**
 * Restores the entry tagged `options.tag` (or the resolved `options.entry`) atomically;
 * `undefined` on a miss (no tag, or an entry with a missing part). Refused/corrupt entries throw
 * typed errors and leave the outputs untouched.
 */
export type RestoreEntry = (
  store: EntryReader,
  options: RestoreEntryOptions,
) => Promise<RestoreEntryResult | undefined>;
/**
 * Resolves the entry tagged `options.tag` (manifests and config, validated) for
 * `restoreEntry({ entry })`; `undefined` on a miss.
 */
export type LookupEntry = (
  store: EntryReader,
  options: LookupEntryOptions,
) => Promise<ResolvedEntry | undefined>;
/** `true` when a complete entry is tagged `tag` (cheap: the manifest fetch and a HEAD of the config). */
export type HasEntry = (
  store: EntryChecker,
  tag: string,
  options?: { signal?: AbortSignal },
) => Promise<boolean>;
