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
 * Blobs are written to a temp file in their final directory, verified while written
 * (through the shared {@link verifyStream}), fsynced and renamed into place. `index.json` is
 * replaced atomically (temp file + rename) under a cross-process lock file, so concurrent
 * writers on one machine never corrupt it and never lose each other's tags.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isDigest, parseDigest, sha256Digest } from '../digest.js';
import {
  BlobUnknownError,
  DigestInvalidError,
  InvalidOptionError,
  LayoutInvalidError,
  LayoutVersionUnsupportedError,
  ManifestBlobUnknownError,
  ManifestInvalidError,
  ManifestUnknownError,
  SizeInvalidError,
  TagInvalidError,
} from '../errors.js';
import type {
  BlobBody,
  Descriptor,
  FetchedManifest,
  OciStore,
  PushBlobOptions,
  PushManifestOptions,
  RequestOptions,
} from '../types.js';
import { verifyStream } from '../verify.js';
import { acquireLock } from './lock.js';

/** The annotation that carries a tag in an image layout's `index.json`. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** The only `imageLayoutVersion` this store reads and writes. */
export const IMAGE_LAYOUT_VERSION = '1.0.0';
/** Media type of `index.json` (an image index). */
export const IMAGE_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
const IMAGE_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
// NOTE: registries refuse manifests above 4 MiB; the same cap keeps a corrupt index entry from
// making us buffer an arbitrary file.
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const TEMP_PREFIX = '.tmp-';

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
   * How long a writer waits for the `index.json.lock` held by another writer before it
   * throws `LockTimeoutError` (`LOCK_TIMEOUT`).
   * @default 30000
   */
  lockTimeoutMs?: number;
  /**
   * A lock file older than this is considered abandoned and broken (a lock whose owner PID
   * is dead on this host is broken at once). The lock is held for milliseconds.
   * @default 10000
   */
  staleLockMs?: number;
}

/** Options of {@link LayoutStore.gc}. */
export interface LayoutGcOptions extends RequestOptions {
  /**
   * Unreferenced blobs and temp files younger than this are kept: they may belong to a save
   * in progress (blobs and manifests are pushed before the tag that references them).
   * @default 3600000 (one hour)
   */
  minAgeMs?: number;
}

/** What {@link LayoutStore.gc} removed. */
export interface LayoutGcResult {
  /** Digests of the removed blobs. */
  removed: string[];
  /** Bytes freed (blobs and stale temp files). */
  freedBytes: number;
}

/** An {@link OciStore} over an OCI image-layout directory, with its optional capabilities. */
export interface LayoutStore extends OciStore {
  /** Absolute path of the layout directory. */
  readonly dir: string;
  /** Tags in `index.json` order, each once. A layout that does not exist has none. */
  listTags(options?: RequestOptions): AsyncIterable<string>;
  /**
   * Removes every `index.json` entry (every tag) pointing at `digest`. The blobs stay until
   * {@link LayoutStore.gc}; until then the manifest can still be fetched by digest.
   * @throws {ManifestUnknownError} when no entry points at `digest` and no such blob exists.
   */
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
  /**
   * Deletes blobs no manifest in `index.json` reaches (walking image indexes, manifests,
   * configs, layers and subjects) and abandoned temp files, older than `minAgeMs`.
   */
  gc(options?: LayoutGcOptions): Promise<LayoutGcResult>;
  /** Nothing to release (no handle stays open between calls); present for symmetry. */
  close(): Promise<void>;
}

/** The parsed `index.json`; unknown fields are kept as they are when it is rewritten. */
interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  [key: string]: unknown;
}

function checkDigest(digest: unknown): string {
  if (!isDigest(digest)) {
    // parseDigest throws the precise DigestInvalidError for a string; cover non-strings too.
    if (typeof digest === 'string') parseDigest(digest);
    throw new DigestInvalidError(`digest must be a string, got ${typeof digest}`);
  }
  return digest;
}

function checkSize(size: unknown, digest: string): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new SizeInvalidError(`descriptor size must be a non-negative integer, got ${String(size)}`, {
      digest,
    });
  }
  return size;
}

function checkTag(tag: unknown): string {
  if (typeof tag !== 'string' || !TAG_RE.test(tag)) {
    throw new TagInvalidError(
      `tag ${JSON.stringify(tag)} must match ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ (at most 128 characters, not starting with "." or "-")`,
    );
  }
  return tag;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function* bodyIterable(body: BlobBody): AsyncIterable<Uint8Array> {
  if (body instanceof Uint8Array) {
    yield body;
  } else if (typeof body === 'function') {
    yield* body();
  } else {
    yield* body;
  }
}

/** Reads a whole small file through the shared verifier. */
async function readVerified(
  path: string,
  expected: Pick<Descriptor, 'digest' | 'size'>,
  location: string,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of verifyStream(createReadStream(path), expected, { signal, location })) {
    parts.push(chunk);
  }
  return Buffer.concat(parts);
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

  const root = resolve(dir);
  const location = `oci:${root}`;
  const layoutFile = join(root, 'oci-layout');
  const indexFile = join(root, 'index.json');
  const lockFile = join(root, 'index.json.lock');
  let layoutChecked = false;
  let layoutReady: Promise<void> | undefined;

  const blobPath = (digest: string): string => {
    const { algorithm, encoded } = parseDigest(digest);
    return join(root, 'blobs', algorithm, encoded);
  };

  /** Validates `oci-layout` once it exists; `false` when there is no layout yet. */
  async function checkLayoutFile(): Promise<boolean> {
    if (layoutChecked) return true;
    let text: string;
    try {
      text = await readFile(layoutFile, 'utf8');
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new LayoutInvalidError(`${layoutFile} is not valid JSON`, { path: layoutFile, cause });
    }
    const version = (parsed as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    if (typeof version !== 'string') {
      throw new LayoutInvalidError(`${layoutFile} has no string "imageLayoutVersion"`, { path: layoutFile });
    }
    if (version !== IMAGE_LAYOUT_VERSION) {
      throw new LayoutVersionUnsupportedError(
        `${layoutFile} has imageLayoutVersion ${JSON.stringify(version)}; only "${IMAGE_LAYOUT_VERSION}" is supported`,
        { path: layoutFile },
      );
    }
    layoutChecked = true;
    return true;
  }

  /** Writes `data` to `path` atomically: temp file in the same directory, fsync, rename. */
  async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    const tmp = `${path}${TEMP_PREFIX}${randomBytes(6).toString('hex')}`;
    const handle = await open(tmp, 'wx', 0o644);
    try {
      await handle.writeFile(data);
      if (fsync) await handle.sync();
    } catch (error) {
      await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw error;
    }
    await handle.close();
    try {
      await rename(tmp, path);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
    if (fsync) await syncDir(join(path, '..'));
  }

  async function syncDir(path: string): Promise<void> {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Creates the layout skeleton on the first write (and checks an existing one). */
  function ensureLayout(): Promise<void> {
    layoutReady ??= (async () => {
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
      if (await checkLayoutFile()) return;
      await writeAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: IMAGE_LAYOUT_VERSION }));
      layoutChecked = true;
    })().catch((error: unknown) => {
      layoutReady = undefined;
      throw error;
    });
    return layoutReady;
  }

  /** Reads and validates `index.json`; `undefined` when the layout has none yet. */
  async function readIndex(): Promise<ImageIndex | undefined> {
    let text: string;
    try {
      text = await readFile(indexFile, 'utf8');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    await checkLayoutFile();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new LayoutInvalidError(`${indexFile} is not valid JSON`, { path: indexFile, cause });
    }
    const bad = (what: string): never => {
      throw new LayoutInvalidError(`${indexFile} ${what}`, { path: indexFile });
    };
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) bad('is not a JSON object');
    const index = parsed as Record<string, unknown>;
    if (index.schemaVersion !== 2)
      bad(`has schemaVersion ${JSON.stringify(index.schemaVersion)}, expected 2`);
    if (index.mediaType !== undefined && index.mediaType !== IMAGE_INDEX_MEDIA_TYPE) {
      bad(`has mediaType ${JSON.stringify(index.mediaType)}, expected ${IMAGE_INDEX_MEDIA_TYPE}`);
    }
    if (!Array.isArray(index.manifests)) bad('has no "manifests" array');
    (index.manifests as unknown[]).forEach((entry, i) => {
      const d = entry as Partial<Descriptor> | null;
      if (typeof d !== 'object' || d === null) bad(`manifests[${i}] is not an object`);
      if (typeof d?.mediaType !== 'string') bad(`manifests[${i}] has no string mediaType`);
      if (!isDigest(d?.digest)) bad(`manifests[${i}] has an invalid digest ${JSON.stringify(d?.digest)}`);
      if (typeof d?.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
        bad(`manifests[${i}] has an invalid size ${JSON.stringify(d?.size)}`);
      }
      if (d?.annotations !== undefined && (typeof d.annotations !== 'object' || d.annotations === null)) {
        bad(`manifests[${i}] has invalid annotations`);
      }
    });
    return index as ImageIndex;
  }

  /** Read-modify-write of `index.json` under the cross-process lock. */
  async function updateIndex(
    signal: AbortSignal | undefined,
    change: (manifests: Descriptor[]) => Descriptor[] | undefined,
  ): Promise<void> {
    await ensureLayout();
    const lock = await acquireLock(lockFile, { timeoutMs: lockTimeoutMs, staleMs: staleLockMs, signal });
    try {
      const index: ImageIndex = (await readIndex()) ?? {
        schemaVersion: 2,
        mediaType: IMAGE_INDEX_MEDIA_TYPE,
        manifests: [],
      };
      const next = change(index.manifests);
      if (next === undefined) return;
      // NOTE: blob files are fsynced before their rename, their directory entries here, once
      // per index update instead of once per blob: index.json is the commit point, so blobs it
      // references must be durable before it is.
      if (fsync) await syncDir(join(root, 'blobs', 'sha256'));
      await writeAtomic(indexFile, JSON.stringify({ ...index, manifests: next }));
    } finally {
      await lock.release();
    }
  }

  async function sizeOf(path: string): Promise<number | undefined> {
    try {
      const s = await stat(path);
      return s.isFile() ? s.size : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async function fetchBlob(
    descriptor: Descriptor,
    opts?: RequestOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const digest = checkDigest(descriptor?.digest);
    const size = checkSize(descriptor.size, digest);
    opts?.signal?.throwIfAborted();
    const path = blobPath(digest);
    // Open first so a missing blob is reported here, not on the first read.
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (isMissing(error)) {
        throw new BlobUnknownError(`blob ${digest} is not in ${location}`, { digest, cause: error });
      }
      throw error;
    }
    const stream = handle.createReadStream({ highWaterMark: 1024 * 1024 });
    return (async function* () {
      try {
        yield* verifyStream(stream, { digest, size }, { signal: opts?.signal, location });
      } finally {
        // Closes the file also when verification stopped before reading (abort, bad input).
        stream.destroy();
      }
    })();
  }

  async function blobExists(
    descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
    opts?: RequestOptions,
  ): Promise<boolean> {
    const digest = checkDigest(descriptor?.digest);
    opts?.signal?.throwIfAborted();
    return (await sizeOf(blobPath(digest))) !== undefined;
  }

  async function pushBlob(descriptor: Descriptor, body: BlobBody, opts?: PushBlobOptions): Promise<void> {
    const digest = checkDigest(descriptor?.digest);
    const size = checkSize(descriptor.size, digest);
    const signal = opts?.signal;
    signal?.throwIfAborted();
    const target = blobPath(digest);
    // Content-addressed: a blob of the right size under its digest is the same blob. Reads
    // verify it anyway.
    if ((await sizeOf(target)) === size) return;
    await ensureLayout();
    await mkdir(join(target, '..'), { recursive: true });
    const tmp = join(
      target,
      '..',
      `${TEMP_PREFIX}${parseDigest(digest).encoded.slice(0, 16)}-${randomBytes(6).toString('hex')}`,
    );
    const handle = await open(tmp, 'wx', 0o644);
    let closed = false;
    try {
      for await (const chunk of verifyStream(bodyIterable(body), { digest, size }, { signal })) {
        await handle.write(chunk);
      }
      if (fsync) await handle.sync();
      closed = true;
      await handle.close();
      // NOTE: rename() replaces an identical blob another writer renamed in meanwhile; both
      // were verified against the same digest, so either copy is right.
      await rename(tmp, target);
    } catch (error) {
      if (!closed) await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }

  async function readManifestBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined> {
    if (descriptor.size > MAX_MANIFEST_BYTES) {
      throw new ManifestInvalidError(
        `manifest ${descriptor.digest} in ${location} is ${descriptor.size} bytes, above the ${MAX_MANIFEST_BYTES}-byte limit`,
        { digest: descriptor.digest },
      );
    }
    try {
      return await readVerified(blobPath(descriptor.digest), descriptor, location, signal);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  function manifestJson(bytes: Uint8Array, digest: string): Record<string, unknown> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    } catch (cause) {
      throw new ManifestInvalidError(`manifest ${digest} is not valid JSON`, { digest, cause });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ManifestInvalidError(`manifest ${digest} is not a JSON object`, { digest });
    }
    return parsed as Record<string, unknown>;
  }

  function descriptorFor(
    json: Record<string, unknown>,
    digest: string,
    size: number,
    mediaType?: string,
  ): Descriptor {
    const type =
      mediaType ?? (typeof json.mediaType === 'string' ? json.mediaType : IMAGE_MANIFEST_MEDIA_TYPE);
    const descriptor: Descriptor = { mediaType: type, digest, size };
    if (typeof json.artifactType === 'string') descriptor.artifactType = json.artifactType;
    return descriptor;
  }

  async function fetchManifest(
    reference: string,
    opts?: RequestOptions,
  ): Promise<FetchedManifest | undefined> {
    const signal = opts?.signal;
    signal?.throwIfAborted();
    if (typeof reference === 'string' && reference.includes(':')) {
      const digest = checkDigest(reference);
      const size = await sizeOf(blobPath(digest));
      if (size === undefined) return undefined;
      await checkLayoutFile();
      const entry = (await readIndex())?.manifests.find((d) => d.digest === digest);
      const bytes = await readManifestBlob({ digest, size: entry?.size ?? size }, signal);
      if (bytes === undefined) return undefined;
      const json = manifestJson(bytes, digest);
      return { descriptor: descriptorFor(json, digest, bytes.byteLength, entry?.mediaType), bytes };
    }
    const tag = checkTag(reference);
    const index = await readIndex();
    // The last entry wins should a foreign tool have left duplicates.
    const entry = index?.manifests.findLast((d) => d.annotations?.[REF_NAME_ANNOTATION] === tag);
    if (entry === undefined) return undefined;
    const bytes = await readManifestBlob(entry, signal);
    if (bytes === undefined) {
      throw new BlobUnknownError(
        `tag ${tag} in ${location} points at ${entry.digest}, which is not in the layout`,
        {
          digest: entry.digest,
        },
      );
    }
    const json = manifestJson(bytes, entry.digest);
    return { descriptor: descriptorFor(json, entry.digest, entry.size, entry.mediaType), bytes };
  }

  /** Digests a manifest or index references directly (registries check these on push). */
  function referencedDigests(json: Record<string, unknown>): string[] {
    const out: string[] = [];
    const add = (d: unknown) => {
      const digest = (d as { digest?: unknown } | null)?.digest;
      if (isDigest(digest)) out.push(digest);
    };
    add(json.config);
    if (Array.isArray(json.layers)) json.layers.forEach(add);
    if (Array.isArray(json.manifests)) json.manifests.forEach(add);
    return out;
  }

  async function tag(descriptor: Descriptor, tagName: string, opts?: RequestOptions): Promise<void> {
    const digest = checkDigest(descriptor?.digest);
    const size = checkSize(descriptor.size, digest);
    const name = checkTag(tagName);
    if (typeof descriptor.mediaType !== 'string' || descriptor.mediaType.length === 0) {
      throw new ManifestInvalidError(`descriptor of ${digest} has no mediaType`, { digest });
    }
    opts?.signal?.throwIfAborted();
    const present = await sizeOf(blobPath(digest));
    if (present === undefined) {
      throw new ManifestUnknownError(`cannot tag ${name}: manifest ${digest} is not in ${location}`, {
        digest,
      });
    }
    if (present !== size) {
      throw new SizeInvalidError(
        `cannot tag ${name}: manifest ${digest} in ${location} is ${present} bytes, the descriptor says ${size}`,
        { digest },
      );
    }
    const entry: Descriptor = {
      mediaType: descriptor.mediaType,
      digest,
      size,
      annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: name },
    };
    if (descriptor.artifactType !== undefined) entry.artifactType = descriptor.artifactType;
    await updateIndex(opts?.signal, (manifests) => [
      // A tag move replaces the old descriptor for that ref name.
      ...manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== name),
      entry,
    ]);
  }

  async function pushManifest(
    bytes: Uint8Array,
    mediaType: string,
    opts?: PushManifestOptions,
  ): Promise<Descriptor> {
    if (!(bytes instanceof Uint8Array)) throw new ManifestInvalidError('manifest bytes must be a Uint8Array');
    if (typeof mediaType !== 'string' || mediaType.length === 0) {
      throw new ManifestInvalidError('manifest mediaType must be a non-empty string');
    }
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw new ManifestInvalidError(
        `manifest is ${bytes.byteLength} bytes, above the ${MAX_MANIFEST_BYTES}-byte limit`,
      );
    }
    if (opts?.tag !== undefined) checkTag(opts.tag);
    const digest = sha256Digest(bytes);
    const json = manifestJson(bytes, digest);
    if (json.mediaType !== undefined && json.mediaType !== mediaType) {
      throw new ManifestInvalidError(
        `manifest mediaType ${JSON.stringify(json.mediaType)} differs from the given ${JSON.stringify(mediaType)}`,
        { digest },
      );
    }
    const missing: string[] = [];
    for (const ref of referencedDigests(json)) {
      if ((await sizeOf(blobPath(ref))) === undefined) missing.push(ref);
    }
    if (missing.length > 0) {
      throw new ManifestBlobUnknownError(
        `manifest ${digest} references ${missing.length} blob(s) not in ${location}: ${missing.join(', ')}`,
        { digest, missingDigests: missing },
      );
    }
    const descriptor = descriptorFor(json, digest, bytes.byteLength, mediaType);
    await pushBlob(descriptor, bytes, { signal: opts?.signal });
    if (opts?.tag !== undefined) await tag(descriptor, opts.tag, { signal: opts.signal });
    return descriptor;
  }

  async function* listTags(opts?: RequestOptions): AsyncIterable<string> {
    opts?.signal?.throwIfAborted();
    const index = await readIndex();
    const seen = new Set<string>();
    for (const d of index?.manifests ?? []) {
      const name = d.annotations?.[REF_NAME_ANNOTATION];
      if (typeof name === 'string' && !seen.has(name)) {
        seen.add(name);
        yield name;
      }
    }
  }

  async function deleteManifest(digest: string, opts?: RequestOptions): Promise<void> {
    checkDigest(digest);
    opts?.signal?.throwIfAborted();
    let removed = 0;
    if ((await readIndex()) !== undefined) {
      await updateIndex(opts?.signal, (manifests) => {
        const kept = manifests.filter((d) => d.digest !== digest);
        removed = manifests.length - kept.length;
        return removed > 0 ? kept : undefined;
      });
    }
    if (removed === 0 && (await sizeOf(blobPath(digest))) === undefined) {
      throw new ManifestUnknownError(`manifest ${digest} is not in ${location}`, { digest });
    }
  }

  async function gc(gcOptions: LayoutGcOptions = {}): Promise<LayoutGcResult> {
    const minAgeMs = gcOptions.minAgeMs ?? 3_600_000;
    if (!Number.isFinite(minAgeMs) || minAgeMs < 0) {
      throw new InvalidOptionError('gc: options.minAgeMs must be a non-negative number');
    }
    const signal = gcOptions.signal;
    const result: LayoutGcResult = { removed: [], freedBytes: 0 };
    if ((await readIndex()) === undefined && !(await checkLayoutFile())) return result;
    await ensureLayout();
    const lock = await acquireLock(lockFile, { timeoutMs: lockTimeoutMs, staleMs: staleLockMs, signal });
    try {
      // Mark: everything reachable from index.json. Holding the lock keeps tags from moving
      // meanwhile; blobs pushed meanwhile are protected by minAgeMs.
      const live = new Set<string>();
      const queue: Descriptor[] = [...((await readIndex())?.manifests ?? [])];
      while (queue.length > 0) {
        signal?.throwIfAborted();
        const d = queue.pop()!;
        if (live.has(d.digest)) continue;
        live.add(d.digest);
        const isManifest = /manifest|index/.test(d.mediaType) && d.size <= MAX_MANIFEST_BYTES;
        if (!isManifest) continue;
        const bytes = await readManifestBlob(d, signal).catch(() => undefined);
        if (bytes === undefined) continue;
        let json: Record<string, unknown>;
        try {
          json = manifestJson(bytes, d.digest);
        } catch {
          continue;
        }
        const children: unknown[] = [json.config, json.subject];
        if (Array.isArray(json.layers)) children.push(...json.layers);
        if (Array.isArray(json.manifests)) children.push(...json.manifests);
        for (const child of children) {
          const c = child as Partial<Descriptor> | null;
          if (c && isDigest(c.digest) && typeof c.size === 'number') {
            queue.push({ mediaType: String(c.mediaType ?? ''), digest: c.digest, size: c.size });
          }
        }
      }
      // Sweep.
      const now = Date.now();
      for (const algorithm of ['sha256', 'sha512']) {
        const blobsDir = join(root, 'blobs', algorithm);
        let names: string[];
        try {
          names = await readdir(blobsDir);
        } catch (error) {
          if (isMissing(error)) continue;
          throw error;
        }
        for (const name of names) {
          signal?.throwIfAborted();
          const path = join(blobsDir, name);
          const isTemp = name.startsWith(TEMP_PREFIX);
          const digest = `${algorithm}:${name}`;
          if (!isTemp && (!isDigest(digest) || live.has(digest))) continue;
          const s = await stat(path).catch(() => undefined);
          if (!s?.isFile() || now - s.mtimeMs < minAgeMs) continue;
          await unlink(path).catch(() => {});
          result.freedBytes += s.size;
          if (!isTemp) result.removed.push(digest);
        }
      }
    } finally {
      await lock.release();
    }
    return result;
  }

  return {
    dir: root,
    location,
    fetchBlob,
    blobExists,
    pushBlob,
    fetchManifest,
    pushManifest,
    tag,
    listTags,
    deleteManifest,
    gc,
    close: async () => {},
  };
}
