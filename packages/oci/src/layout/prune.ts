// NOTE (size): ~420 lines: the LRU choice, the in-use markers and the blob sweep run under one lock
// and share its reads; split, they would re-read index.json and the manifests.
//
// Bounding a layout: least-recently-used entries go first (by size cap or age), then the blobs
// nothing references any more. Besides the spec's files, a layout that is pruned keeps two small
// directories of its own that image-layout readers (skopeo, oras) ignore:
//
//   DIR/access/<tag>          its mtime is the tag's last use (a save's tag, a restore)
//   DIR/in-use/<tag>@<id>     a process is using <tag> right now (a run's lookup/restore/save)
//
// Recording a use touches one empty file: blobs and `index.json` are never rewritten for it.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isDigest } from '../digest.js';
import { InvalidOptionError } from '../errors.js';
import { manifestReferences } from '../manifest.js';
import { validateTag } from '../reference.js';
import type { Descriptor, RequestOptions } from '../types.js';
import type { LayoutBlobs } from './blobs.js';
import { isMissing, type LayoutContext, MAX_MANIFEST_BYTES, sizeOf, TEMP_PREFIX } from './files.js';
import { type ImageIndex, lockIndex, REF_NAME_ANNOTATION, readIndex } from './image-index.js';

/** Directory of the last-use records, one empty file per tag. */
export const ACCESS_DIR = 'access';
/** Directory of the in-use markers. */
export const IN_USE_DIR = 'in-use';
const HOST = hostname();

/** Options of `LayoutStore.prune`. */
export interface LayoutPruneOptions extends RequestOptions {
  /**
   * Total bytes of the blobs the entries reference, after which least-recently-used entries are
   * removed. The most recently used entry is always kept, whatever its size.
   * @default Infinity (no cap)
   */
  maxSize?: number;
  /**
   * Entries not used for longer than this (ms) are removed.
   * @default Infinity (no limit)
   */
  maxAgeMs?: number;
  /** Report what would be removed, change nothing. @default false */
  dryRun?: boolean;
  /**
   * Blobs no entry references and temp files younger than this are kept: they may belong to a
   * save in progress (blobs are pushed before the tag that references them). The blobs of the
   * entries this prune removes are deleted at once.
   * @default 600000 (ten minutes)
   */
  minAgeMs?: number;
  /**
   * In-use markers older than this are abandoned (their process died without removing them) and
   * no longer protect their entry; markers of a dead process on this host are ignored at once.
   * @default 86400000 (one day)
   */
  staleInUseMs?: number;
}

/** What `LayoutStore.prune` removed (or, with `dryRun`, would remove). */
export interface LayoutPruneResult {
  /** Tags removed from `index.json`. */
  removedTags: string[];
  /** Digests of the removed blobs (with `dryRun`: of the blobs of the removed entries only). */
  removedBlobs: string[];
  /** Bytes freed. */
  freedBytes: number;
  /** Bytes of the blobs the kept entries reference. */
  keptBytes: number;
  /** Number of kept tags. */
  keptTags: number;
}

/** A held in-use marker. */
export interface LayoutUse {
  /** Removes the marker (idempotent). */
  release(): Promise<void>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Records a use of `tag` now (creates or touches `access/<tag>`). Best effort: never throws. */
export async function recordUse(ctx: LayoutContext, tag: string): Promise<void> {
  const path = join(ctx.root, ACCESS_DIR, tag);
  const now = new Date();
  try {
    await utimes(path, now, now);
  } catch (error) {
    if (!isMissing(error)) return;
    try {
      await mkdir(join(ctx.root, ACCESS_DIR), { recursive: true });
      await writeFile(path, '');
    } catch {
      // A last-use record is a hint; without it the manifest's age stands in.
    }
  }
}

/**
 * Marks `tag` as in use by this process until the returned handle is released: `prune` removes
 * neither the entry nor its blobs meanwhile. Also records a use of the tag.
 */
export async function markInUse(ctx: LayoutContext, tagName: string, options: RequestOptions = {}) {
  const tag = validateTag(tagName);
  options.signal?.throwIfAborted();
  const dir = join(ctx.root, IN_USE_DIR);
  const path = join(dir, `${tag}@${process.pid}.${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path, JSON.stringify({ pid: process.pid, host: HOST }));
  await recordUse(ctx, tag);
  let released = false;
  const use: LayoutUse = {
    async release() {
      if (released) return;
      released = true;
      await unlink(path).catch(() => {});
    },
  };
  return use;
}

/** Tags with a live in-use marker; abandoned markers are deleted (unless `dryRun`). */
async function tagsInUse(root: string, staleMs: number, dryRun: boolean): Promise<Set<string>> {
  const dir = join(root, IN_USE_DIR);
  const live = new Set<string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (isMissing(error)) return live;
    throw error;
  }
  const now = Date.now();
  for (const name of names) {
    const at = name.indexOf('@');
    if (at <= 0) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (!s) continue;
    let stale = now - s.mtimeMs > staleMs;
    if (!stale) {
      try {
        const owner = JSON.parse(await readFile(path, 'utf8')) as { pid?: unknown; host?: unknown };
        if (owner.host === HOST && typeof owner.pid === 'number' && !pidAlive(owner.pid)) stale = true;
      } catch {
        // Being written, or foreign: judged by its age alone.
      }
    }
    if (!stale) live.add(name.slice(0, at));
    else if (!dryRun) await unlink(path).catch(() => {});
  }
  return live;
}

/** One manifest the index tags, with its tags, last use and the blobs its graph reaches. */
interface Entry {
  digest: string;
  tags: string[];
  lastUse: number;
  blobs: Map<string, number>;
}

async function lastUseOf(ctx: LayoutContext, tags: string[], digest: string): Promise<number> {
  let last = 0;
  for (const tag of tags) {
    const s = await stat(join(ctx.root, ACCESS_DIR, tag)).catch(() => undefined);
    if (s) last = Math.max(last, s.mtimeMs);
  }
  if (last > 0) return last;
  // No record (a layout written by another tool, or before records existed): the manifest's age.
  const s = await stat(ctx.files.blobPath(digest)).catch(() => undefined);
  return s?.mtimeMs ?? 0;
}

/**
 * The blobs (digest → size) reachable from `root` (manifests are read; unreadable ones end the
 * walk), with or without the subjects of referrers.
 */
async function graphOf(
  blobs: LayoutBlobs,
  root: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>,
  signal: AbortSignal | undefined,
  subjects = true,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const queue = [root];
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const d = queue.pop()!;
    if (out.has(d.digest)) continue;
    out.set(d.digest, d.size);
    const isManifest = /manifest|index/.test(d.mediaType) && d.size <= MAX_MANIFEST_BYTES;
    if (!isManifest) continue;
    const bytes = await blobs.readManifestBlob(d, signal).catch(() => undefined);
    if (bytes === undefined) continue;
    try {
      const refs = manifestReferences(bytes, { lenient: true });
      queue.push(...(subjects ? refs : refs.filter((r) => r.kind !== 'subject')));
    } catch {
      // Not a JSON object: it references nothing we could know of.
    }
  }
  return out;
}

function checkLimit(field: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min) {
    throw new InvalidOptionError(`prune: options.${field} must be a number >= ${min}`);
  }
  return value;
}

/**
 * Prunes the layout (see `LayoutStore.prune`). Everything happens under the `index.json` lock:
 * a save's tag, which re-checks under the same lock that its manifest's blobs exist, either
 * lands before (and its entry counts) or after (and sees what was deleted, so the save re-pushes).
 */
export async function pruneLayout(
  ctx: LayoutContext,
  blobs: LayoutBlobs,
  options: LayoutPruneOptions = {},
): Promise<LayoutPruneResult> {
  const maxSize = checkLimit('maxSize', options.maxSize, Number.POSITIVE_INFINITY, 0);
  const maxAgeMs = checkLimit('maxAgeMs', options.maxAgeMs, Number.POSITIVE_INFINITY, 0);
  const minAgeMs = checkLimit('minAgeMs', options.minAgeMs, 600_000, 0);
  const staleInUseMs = checkLimit('staleInUseMs', options.staleInUseMs, 86_400_000, 0);
  const dryRun = options.dryRun ?? false;
  if (typeof dryRun !== 'boolean') throw new InvalidOptionError('prune: options.dryRun must be a boolean');
  const signal = options.signal;
  signal?.throwIfAborted();
  const result: LayoutPruneResult = {
    removedTags: [],
    removedBlobs: [],
    freedBytes: 0,
    keptBytes: 0,
    keptTags: 0,
  };
  const before = await readIndex(ctx);
  if (before === undefined && !(await ctx.files.checkLayoutFile())) return result;
  // NOTE: the manifests are read before the lock is taken (they are immutable: a graph read now
  // holds later), so the lock is held for the decisions and the deletions only.
  const graphs = new Map<string, Map<string, number>>();
  const graph = async (d: Descriptor) => {
    const known = graphs.get(d.digest);
    if (known) return known;
    const g = await graphOf(blobs, d, signal);
    graphs.set(d.digest, g);
    return g;
  };
  for (const d of before?.manifests ?? []) await graph(d);
  const lock = await lockIndex(ctx, signal);
  // The lock-file locker breaks a lock older than `staleLockMs`: keep ours fresh (as a lease's
  // heartbeat does) should a prune of a large layout on a loaded machine take longer.
  const heartbeat = setInterval(
    () => {
      const now = new Date();
      utimes(ctx.files.lockFile, now, now).catch(() => {});
    },
    Math.max(50, ctx.staleLockMs / 3),
  );
  heartbeat.unref();
  try {
    const index: ImageIndex | undefined = await readIndex(ctx);
    const manifests = index?.manifests ?? [];
    // Entries: one per tagged manifest digest (a task's pointer tag shares its entry's manifest).
    const byDigest = new Map<string, { descriptor: Descriptor; tags: string[] }>();
    for (const d of manifests) {
      const tag = d.annotations?.[REF_NAME_ANNOTATION];
      const e = byDigest.get(d.digest) ?? { descriptor: d, tags: [] };
      if (typeof tag === 'string') e.tags.push(tag);
      byDigest.set(d.digest, e);
    }
    const entries: Entry[] = [];
    for (const [digest, { descriptor, tags }] of byDigest) {
      entries.push({
        digest,
        tags,
        lastUse: await lastUseOf(ctx, tags, digest),
        blobs: await graph(descriptor),
      });
    }
    // Least recently used first.
    entries.sort((a, b) => a.lastUse - b.lastUse);
    const refs = new Map<string, number>();
    let total = 0;
    for (const e of entries) {
      for (const [digest, size] of e.blobs) {
        const n = refs.get(digest) ?? 0;
        if (n === 0) total += size;
        refs.set(digest, n + 1);
      }
    }
    const inUse = await tagsInUse(ctx.root, staleInUseMs, dryRun);
    const now = Date.now();
    const victims: Entry[] = [];
    const remove = (e: Entry) => {
      victims.push(e);
      for (const [digest, size] of e.blobs) {
        const n = refs.get(digest)! - 1;
        refs.set(digest, n);
        if (n === 0) total -= size;
      }
    };
    const newest = entries.at(-1);
    for (const e of entries) {
      signal?.throwIfAborted();
      if (e.tags.some((t) => inUse.has(t))) continue;
      const old = now - e.lastUse > maxAgeMs;
      if (old || (total > maxSize && e !== newest)) remove(e);
    }
    const victimDigests = new Set(victims.map((v) => v.digest));
    result.removedTags = victims.flatMap((v) => v.tags).sort();
    result.keptTags = entries.filter((e) => !victimDigests.has(e.digest)).flatMap((e) => e.tags).length;
    result.keptBytes = total;
    if (dryRun) {
      for (const [digest, n] of refs) {
        if (n !== 0) continue;
        result.removedBlobs.push(digest);
        result.freedBytes += victims.find((v) => v.blobs.has(digest))?.blobs.get(digest) ?? 0;
      }
      return result;
    }
    if (victims.length > 0) {
      await ctx.files.writeAtomic(
        ctx.files.indexFile,
        JSON.stringify({ ...index, manifests: manifests.filter((d) => !victimDigests.has(d.digest)) }),
      );
    }
    // A process that marked a victim's tag in use after the markers were read above may have
    // resolved the tag before index.json changed: its entry's blobs stay until the next prune.
    const lateUse = await tagsInUse(ctx.root, staleInUseMs, true);
    const live = new Set<string>();
    for (const [digest, n] of refs) if (n > 0) live.add(digest);
    const victimBlobs = new Set<string>();
    for (const v of victims) {
      const keep = v.tags.some((t) => lateUse.has(t));
      for (const digest of v.blobs.keys()) (keep ? live : victimBlobs).add(digest);
      if (!keep) for (const t of v.tags) await unlink(join(ctx.root, ACCESS_DIR, t)).catch(() => {});
    }
    await sweep(ctx, live, victimBlobs, minAgeMs, signal, result);
    await sweepAccessRecords(ctx, new Set(entries.flatMap((e) => e.tags)), minAgeMs);
  } finally {
    clearInterval(heartbeat);
    await lock.release();
  }
  return result;
}

/** Deletes blobs: the victims' at once, other unreferenced ones and temp files once old enough. */
async function sweep(
  ctx: LayoutContext,
  live: Set<string>,
  victimBlobs: Set<string>,
  minAgeMs: number,
  signal: AbortSignal | undefined,
  result: LayoutPruneResult,
): Promise<void> {
  const now = Date.now();
  for (const algorithm of ['sha256', 'sha512']) {
    const dir = join(ctx.root, 'blobs', algorithm);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (isMissing(error)) continue;
      throw error;
    }
    for (const name of names) {
      signal?.throwIfAborted();
      const isTemp = name.startsWith(TEMP_PREFIX);
      const digest = `${algorithm}:${name}`;
      if (!isTemp && (!isDigest(digest) || live.has(digest))) continue;
      const path = join(dir, name);
      const s = await stat(path).catch(() => undefined);
      if (!s?.isFile()) continue;
      if (!victimBlobs.has(digest) && now - s.mtimeMs < minAgeMs) continue;
      try {
        await unlink(path);
      } catch {
        continue;
      }
      result.freedBytes += s.size;
      if (!isTemp) result.removedBlobs.push(digest);
    }
  }
}

/** Removes last-use records of tags the index no longer has (and that are old enough). */
async function sweepAccessRecords(ctx: LayoutContext, tags: Set<string>, minAgeMs: number): Promise<void> {
  const dir = join(ctx.root, ACCESS_DIR);
  const names = await readdir(dir).catch(() => [] as string[]);
  const now = Date.now();
  for (const name of names) {
    if (tags.has(name)) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (s && now - s.mtimeMs >= minAgeMs) await unlink(path).catch(() => {});
  }
}

/**
 * The blobs of `root`'s graph that are not in the layout (checked by `tag` under the lock, so a
 * tag never commits an entry a concurrent prune has just deleted part of).
 */
export async function missingBlobs(
  ctx: LayoutContext,
  blobs: LayoutBlobs,
  root: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const missing: string[] = [];
  // A subject need not exist (OCI 1.1 referrers), as when the manifest was pushed.
  for (const digest of (await graphOf(blobs, root, signal, false)).keys()) {
    if ((await sizeOf(ctx.files.blobPath(digest))) === undefined) missing.push(digest);
  }
  return missing;
}
