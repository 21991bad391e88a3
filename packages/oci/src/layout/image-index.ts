// The layout's `index.json`: an image index whose entries are the tagged manifests (a tag is an
// `org.opencontainers.image.ref.name` annotation). Read strictly; rewritten atomically under the
// cross-process lock, keeping foreign entries and fields.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest } from '../digest.js';
import { LayoutInvalidError } from '../errors.js';
import { MEDIA_TYPE_IMAGE_INDEX } from '../manifest.js';
import type { Descriptor } from '../types.js';
import { isMissing, type LayoutContext, syncDir } from './files.js';

/** The annotation that carries a tag in an image layout's `index.json`. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** The parsed `index.json`; unknown fields are kept as they are when it is rewritten. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  [key: string]: unknown;
}

/** Reads and validates `index.json`; `undefined` when the layout has none yet. */
export async function readIndex(ctx: LayoutContext): Promise<ImageIndex | undefined> {
  const { indexFile } = ctx.files;
  let text: string;
  try {
    text = await readFile(indexFile, 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  await ctx.files.checkLayoutFile();
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
  if (index.schemaVersion !== 2) bad(`has schemaVersion ${JSON.stringify(index.schemaVersion)}, expected 2`);
  if (index.mediaType !== undefined && index.mediaType !== MEDIA_TYPE_IMAGE_INDEX) {
    bad(`has mediaType ${JSON.stringify(index.mediaType)}, expected ${MEDIA_TYPE_IMAGE_INDEX}`);
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

/** Takes the cross-process lock of `index.json` (created with the layout). */
export async function lockIndex(ctx: LayoutContext, signal: AbortSignal | undefined) {
  await ctx.files.ensureLayout();
  return ctx.locker(ctx.files.lockFile, {
    timeoutMs: ctx.lockTimeoutMs,
    staleMs: ctx.staleLockMs,
    ...(signal ? { signal } : {}),
  });
}

/**
 * Read-modify-write of `index.json` under the cross-process lock; `change` returns the new
 * entries, or `undefined` to leave the file as it is. `check`, when given, runs first under the
 * lock; its rejection leaves the file as it is.
 */
export async function updateIndex(
  ctx: LayoutContext,
  signal: AbortSignal | undefined,
  change: (manifests: Descriptor[]) => Descriptor[] | undefined,
  check?: () => Promise<void>,
): Promise<void> {
  const lock = await lockIndex(ctx, signal);
  try {
    // A check that must hold under the lock (a tag's blobs are all there), before any change.
    if (check) await check();
    const index: ImageIndex = (await readIndex(ctx)) ?? {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_IMAGE_INDEX,
      manifests: [],
    };
    const next = change(index.manifests);
    if (next === undefined) return;
    // NOTE: blob files are fsynced before their rename, their directory entries here, once
    // per index update instead of once per blob: index.json is the commit point, so blobs it
    // references must be durable before it is.
    if (ctx.fsync) await syncDir(join(ctx.root, 'blobs', 'sha256'));
    await ctx.files.writeAtomic(ctx.files.indexFile, JSON.stringify({ ...index, manifests: next }));
  } finally {
    await lock.release();
  }
}
