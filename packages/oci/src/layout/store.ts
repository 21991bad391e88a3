/**
 * An {@link OciStore} over an OCI image-layout directory (image-spec v1.1.1
 * https://github.com/opencontainers/image-spec/blob/v1.1.1/image-layout.md):
 *
 * ```
 * DIR/oci-layout          {"imageLayoutVersion":"1.0.0"}
 * DIR/index.json          image index; tags are `org.opencontainers.image.ref.name` annotations
 * DIR/blobs/sha256/<hex>  content-addressed blobs (manifests, configs, layers)
 * ```
 *
 * The parts: `files.ts` (paths, `oci-layout`, atomic writes), `blobs.ts` (verified reads and
 * writes), `image-index.ts` (`index.json` under the cross-process lock), `manifests.ts`
 * (manifests and tags), `gc.ts` (garbage collection) and `prune.ts` (least-recently-used bounds,
 * last-use records and in-use markers).
 */
import { resolve } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import type { OciStore, RequestOptions } from '../types.js';
import { createLayoutBlobs } from './blobs.js';
import { type LayoutContext, layoutFiles } from './files.js';
import { collectGarbage, type LayoutGcOptions, type LayoutGcResult } from './gc.js';
import { inProcessLocker, type LayoutLocker } from './lock.js';
import { createLayoutManifests } from './manifests.js';
import {
  type LayoutPruneOptions,
  type LayoutPruneResult,
  type LayoutUse,
  markInUse,
  pruneLayout,
  recordUse,
} from './prune.js';

export { IMAGE_LAYOUT_VERSION } from './files.js';
export type { LayoutGcOptions, LayoutGcResult } from './gc.js';
export { REF_NAME_ANNOTATION } from './image-index.js';
export type { LayoutLocker } from './lock.js';
export type { LayoutPruneOptions, LayoutPruneResult, LayoutUse } from './prune.js';

/** Options of {@link createLayoutStore}. */
export interface LayoutStoreOptions {
  /**
   * fsync each blob file before its rename, and the blobs directory, `index.json` and its
   * directory when a tag update commits, so a power loss never leaves a tag pointing at a
   * missing or truncated blob. Turn off only for throwaway layouts (tests, benchmarks).
   * @default true
   */
  fsync?: boolean;
  /**
   * How long a writer waits for the lock of `index.json` held by another writer before it gives
   * up (`LockTimeoutError` with the default locker).
   * @default 30000
   */
  lockTimeoutMs?: number;
  /**
   * Passed to the `locker` as `staleMs`: with a lock-file locker, a lock file older than this is
   * considered abandoned and broken (the lock is held for milliseconds). The default locker
   * ignores it.
   * @default 10000
   */
  staleLockMs?: number;
  /**
   * The lock taken around each update of `index.json`, called with the lock file's path
   * (`<dir>/index.json.lock`), `lockTimeoutMs`, `staleLockMs` and the call's signal. The default
   * only excludes writers of this process: when several processes write the same layout, pass a
   * cross-process locker — `acquireLockFile` of `@task-cache/lock` (core passes it for every
   * layout it opens).
   * @default an in-process mutex per layout
   */
  locker?: LayoutLocker;
}

/** An {@link OciStore} over an OCI image-layout directory, with its optional capabilities. */
export interface LayoutStore extends OciStore {
  /** Absolute path of the layout directory. */
  readonly dir: string;
  /** Tags in lexical order, each once. A layout that does not exist has none. */
  listTags(options?: RequestOptions): AsyncIterable<string>;
  /**
   * Removes every `index.json` entry (every tag) pointing at `digest`; a digest no entry points
   * at is not an error. The blobs stay until {@link LayoutStore.gc}; until then the manifest
   * can still be fetched by digest.
   */
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
  /**
   * Deletes blobs no manifest in `index.json` reaches (walking image indexes, manifests,
   * configs, layers and subjects) and abandoned temp files, older than `minAgeMs`.
   */
  gc(options?: LayoutGcOptions): Promise<LayoutGcResult>;
  /**
   * Bounds the layout: removes the least-recently-used entries (a tagged manifest with all its
   * tags) until the blobs the kept ones reference fit `maxSize`, and the entries unused for
   * longer than `maxAgeMs`; then deletes the blobs only removed entries referenced (at once) and
   * other unreferenced blobs and temp files older than `minAgeMs`. Entries marked in use
   * ({@link LayoutStore.markInUse}) by any process are kept, and so is the most recently used
   * entry. Runs under the `index.json` lock: safe with other processes saving and restoring.
   */
  prune(options?: LayoutPruneOptions): Promise<LayoutPruneResult>;
  /**
   * Marks `tag` in use until released (a file under `in-use/`, seen by every process): prune
   * keeps its entry and blobs. Also records a use of `tag`. Take it before resolving the tag.
   */
  markInUse(tag: string, options?: RequestOptions): Promise<LayoutUse>;
  /**
   * Records a use of `tag` now (the mtime of `access/<tag>`; blobs are not rewritten), for the
   * least-recently-used order of {@link LayoutStore.prune}. A tag (and so a save) records one
   * itself. Best effort: never rejects.
   */
  recordUse(tag: string): Promise<void>;
  /** Nothing to release (no handle stays open between calls); present for symmetry. */
  close(): Promise<void>;
}

/**
 * Creates an {@link OciStore} over the OCI image-layout directory `dir`. Nothing is created
 * until the first write; reading a layout that does not exist is a miss, not an error.
 *
 * @example
 * ```ts
 * const store = createLayoutStore('.task-cache/oci');
 * await store.pushBlob(descriptor, bytes);
 * ```
 */
export function createLayoutStore(dir: string, options: LayoutStoreOptions = {}): LayoutStore {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new InvalidOptionError('createLayoutStore: dir must be a non-empty path');
  }
  const fsync = options.fsync ?? true;
  const lockTimeoutMs = options.lockTimeoutMs ?? 30_000;
  const staleLockMs = options.staleLockMs ?? 10_000;
  if (typeof fsync !== 'boolean')
    throw new InvalidOptionError('createLayoutStore: options.fsync must be a boolean');
  if (!Number.isFinite(lockTimeoutMs) || lockTimeoutMs < 0) {
    throw new InvalidOptionError('createLayoutStore: options.lockTimeoutMs must be a non-negative number');
  }
  if (!Number.isFinite(staleLockMs) || staleLockMs <= 0) {
    throw new InvalidOptionError('createLayoutStore: options.staleLockMs must be a positive number');
  }
  if (options.locker !== undefined && typeof options.locker !== 'function') {
    throw new InvalidOptionError('createLayoutStore: options.locker must be a function');
  }
  const root = resolve(dir);
  const ctx: LayoutContext = {
    root,
    location: `oci:${root}`,
    fsync,
    lockTimeoutMs,
    staleLockMs,
    locker: options.locker ?? inProcessLocker,
    files: layoutFiles(root, fsync),
  };
  const blobs = createLayoutBlobs(ctx);
  const { readManifestBlob: _internal, ...blobCapabilities } = blobs;
  return {
    dir: root,
    location: ctx.location,
    ...blobCapabilities,
    ...createLayoutManifests(ctx, blobs),
    gc: (gcOptions) => collectGarbage(ctx, blobs, gcOptions),
    prune: (pruneOptions) => pruneLayout(ctx, blobs, pruneOptions),
    markInUse: (tag, useOptions) => markInUse(ctx, tag, useOptions),
    recordUse: (tag) => recordUse(ctx, tag),
    close: async () => {},
  };
}
