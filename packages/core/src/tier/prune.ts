/**
 * Pruning the local store and the state dir: `cache.prune()` for tools, and the background prune
 * a save schedules (at most once per `pruneIntervalMs` across the processes sharing a state dir,
 * never awaited by the run). The store's part is `LayoutStore.prune` of `@task-cache/oci` (least
 * recently used first, under the layout's cross-process lock); the state dir's part removes
 * remembered bases unused for `maxAge` and lock files nobody has touched for a day.
 */
import { mkdir, readdir, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayoutPruneOptions, LayoutPruneResult, LayoutUse, OciStore } from '@task-cache/oci';
import type { LocalBounds } from './bounds.js';

/** Options of `Cache.prune`. */
export interface PruneOptions {
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  signal?: AbortSignal;
}

/** What `Cache.prune` removed (with `dryRun`: would remove). */
export interface PruneResult {
  /** The store's redacted location. */
  store: string;
  /** `false` when the store cannot be pruned here (a registry, Redis, memory): nothing was. */
  supported: boolean;
  dryRun: boolean;
  /** Tags removed (entries and the pointer tags that pointed at them). */
  removedTags: string[];
  /** Number of blobs deleted. */
  removedBlobs: number;
  /** Bytes freed in the store. */
  freedBytes: number;
  /** Bytes the kept entries reference. */
  keptBytes: number;
  /** Number of kept tags. */
  keptTags: number;
  /** Files of the state dir removed (remembered bases, lock files). */
  removedStateFiles: number;
}

/** A store `prune` can bound: an image layout (the embedded default, `oci-layout:`). */
export interface PrunableStore extends OciStore {
  prune(options?: LayoutPruneOptions): Promise<LayoutPruneResult>;
  markInUse(tag: string, options?: { signal?: AbortSignal }): Promise<LayoutUse>;
}

/** `true` for a store with `prune` and `markInUse` (duck-typed: optional capabilities). */
export function isPrunable(store: OciStore): store is PrunableStore {
  const s = store as Partial<PrunableStore>;
  return typeof s.prune === 'function' && typeof s.markInUse === 'function';
}

/**
 * Marks `tag` in use in `store` while a run looks it up, restores or saves it (a concurrent
 * prune keeps it). Best effort: `undefined` for other stores or on trouble.
 */
export async function markInUse(store: OciStore | undefined, tag: string): Promise<LayoutUse | undefined> {
  if (!store || !isPrunable(store)) return undefined;
  return store.markInUse(tag).catch(() => undefined);
}

// NOTE: a lock file's mtime is refreshed by its holder's heartbeat (a lease) or it lives for
// milliseconds (a mutex): one untouched for a day is nobody's.
const LOCK_FILE_MAX_AGE_MS = 86_400_000;
const STAMP = 'prune-stamp';

async function pruneDir(dir: string, maxAgeMs: number, dryRun: boolean, keep: (name: string) => boolean) {
  let removed = 0;
  const names = await readdir(dir).catch(() => [] as string[]);
  const now = Date.now();
  for (const name of names) {
    if (keep(name)) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (!s?.isFile() || now - s.mtimeMs <= maxAgeMs) continue;
    if (dryRun) removed++;
    else
      await unlink(path).then(
        () => removed++,
        () => {},
      );
  }
  return removed;
}

/** The state dir's part: remembered bases unused for `maxAgeMs`, lock files untouched for a day. */
export async function pruneStateDir(stateDir: string, maxAgeMs: number, dryRun: boolean): Promise<number> {
  const bases = await pruneDir(join(stateDir, 'bases'), maxAgeMs, dryRun, (n) => !n.endsWith('.json'));
  const locks = await pruneDir(
    join(stateDir, 'locks'),
    LOCK_FILE_MAX_AGE_MS,
    dryRun,
    (n) => !(n.endsWith('.lock') || n.endsWith('.fence')),
  );
  return bases + locks;
}

/** Prunes `store` (when it can be) and the state dir within `bounds`. */
export async function pruneLocal(
  store: OciStore,
  stateDir: string,
  bounds: LocalBounds,
  options: PruneOptions = {},
): Promise<PruneResult> {
  const dryRun = options.dryRun ?? false;
  options.signal?.throwIfAborted();
  const result: PruneResult = {
    store: store.location,
    supported: isPrunable(store),
    dryRun,
    removedTags: [],
    removedBlobs: 0,
    freedBytes: 0,
    keptBytes: 0,
    keptTags: 0,
    removedStateFiles: 0,
  };
  if (isPrunable(store)) {
    const r = await store.prune({
      maxSize: bounds.maxSize,
      maxAgeMs: bounds.maxAgeMs,
      dryRun,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    result.removedTags = r.removedTags;
    result.removedBlobs = r.removedBlobs.length;
    result.freedBytes = r.freedBytes;
    result.keptBytes = r.keptBytes;
    result.keptTags = r.keptTags;
  }
  result.removedStateFiles = await pruneStateDir(stateDir, bounds.maxAgeMs, dryRun);
  return result;
}

/**
 * Whether a background prune is due: the stamp `<stateDir>/prune-stamp` is older than
 * `intervalMs` (or missing). Claims the interval by touching the stamp, so of several processes
 * finishing saves together usually one prunes (two pruning at once is safe, merely wasted work).
 */
export async function claimPruneInterval(stateDir: string, intervalMs: number): Promise<boolean> {
  const path = join(stateDir, STAMP);
  const s = await stat(path).catch(() => undefined);
  if (s && Date.now() - s.mtimeMs < intervalMs) return false;
  const now = new Date();
  try {
    if (s) await utimes(path, now, now);
    else {
      await mkdir(stateDir, { recursive: true });
      await writeFile(path, '');
    }
    return true;
  } catch {
    return false;
  }
}

const isLockTimeout = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'LOCK_ERR_TIMEOUT' || code === 'OCI_ERR_LOCK_TIMEOUT';
};

/** The background pruner of one cache instance. */
export interface Pruner {
  /** After a save: prunes in the background when due (never rejects, never awaited by the run). */
  schedule(store: OciStore): void;
  /** Resolves once no background prune runs (`close()` awaits it). */
  idle(): Promise<void>;
}

/**
 * The background pruner of a cache whose store core opened from a local URL (`enabled`); trouble
 * goes to `onTrouble` (a warning event), never to a run.
 */
export function createPruner(
  enabled: boolean,
  stateDir: string,
  bounds: LocalBounds,
  onTrouble: (error: unknown) => void,
): Pruner {
  let running: Promise<void> | undefined;
  const bounded = Number.isFinite(bounds.maxSize) || Number.isFinite(bounds.maxAgeMs);
  return {
    schedule(store) {
      if (!enabled || !bounded || running || !isPrunable(store)) return;
      const job = (async () => {
        if (!(await claimPruneInterval(stateDir, bounds.pruneIntervalMs))) return;
        try {
          await pruneLocal(store, stateDir, bounds);
        } catch (error) {
          // NOTE: the layout's lock stayed busy (other processes writing or pruning it): not
          // trouble. Give the interval back so that the next save tries again.
          if (!isLockTimeout(error)) throw error;
          await unlink(join(stateDir, STAMP)).catch(() => {});
        }
      })()
        .catch(onTrouble)
        .finally(() => {
          running = undefined;
        });
      running = job;
    },
    idle: () => running ?? Promise.resolve(),
  };
}
