// The files of an image layout other than blobs' contents: where everything lives, `oci-layout`
// (checked once, written on the first write), atomic replacement with fsync, and the small
// filesystem helpers the other parts share.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest } from '../digest.js';
import { LayoutInvalidError, LayoutVersionUnsupportedError } from '../errors.js';
import type { LayoutLocker } from './lock.js';

/** The only `imageLayoutVersion` this store reads and writes. */
export const IMAGE_LAYOUT_VERSION = '1.0.0';
/** Prefix of the temp files next to their final place (gc removes abandoned ones). */
export const TEMP_PREFIX = '.tmp-';
// NOTE: registries refuse manifests above 4 MiB; the same cap keeps a corrupt index entry from
// making us buffer an arbitrary file.
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Settings and shared state of one layout store. */
export interface LayoutContext {
  /** Absolute path of the layout directory. */
  root: string;
  /** `oci:<root>`, for messages. */
  location: string;
  fsync: boolean;
  lockTimeoutMs: number;
  staleLockMs: number;
  /** Takes the cross-process lock of `index.json`. */
  locker: LayoutLocker;
  /** The layout's own files and lazily checked state. */
  files: LayoutFiles;
}

/** `true` for "no such file" (also a missing parent directory). */
export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Size of a regular file, `undefined` when there is none. */
export async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** fsyncs a directory (its entries). */
export async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The layout's files: paths, `oci-layout`, atomic writes. */
export interface LayoutFiles {
  readonly indexFile: string;
  readonly lockFile: string;
  /** `blobs/<algorithm>/<hex>` of a digest. */
  blobPath(digest: string): string;
  /** Validates `oci-layout` once it exists; `false` when there is no layout yet. */
  checkLayoutFile(): Promise<boolean>;
  /** Creates the layout skeleton on the first write (and checks an existing one). */
  ensureLayout(): Promise<void>;
  /** Writes `data` to `path` atomically: temp file in the same directory, fsync, rename. */
  writeAtomic(path: string, data: string | Uint8Array): Promise<void>;
}

/** The files of the layout at `root`. */
export function layoutFiles(root: string, fsync: boolean): LayoutFiles {
  const layoutFile = join(root, 'oci-layout');
  let layoutChecked = false;
  let layoutReady: Promise<void> | undefined;

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

  return {
    indexFile: join(root, 'index.json'),
    lockFile: join(root, 'index.json.lock'),
    blobPath(digest) {
      const { algorithm, encoded } = parseDigest(digest);
      return join(root, 'blobs', algorithm, encoded);
    },
    checkLayoutFile,
    ensureLayout,
    writeAtomic,
  };
}
