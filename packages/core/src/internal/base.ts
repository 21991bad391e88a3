/**
 * The base entry of a save: the entry whose stored chunks a save reuses without compressing,
 * checking or uploading them again (docs/format.md "Reuse and the pointer tag"). It is the
 * entry this workspace last saved or restored for the task (remembered in a small state file),
 * else the task's most recent entry, found through the pointer tag `<urlsafe(task)>.latest`
 * that every save moves.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Descriptor } from '@task-cache/oci';
import { resolveEntry } from '../entry/resolve.js';
import type { EntryReader } from '../entry/types.js';
import { urlsafe } from '../key/urlsafe.js';
import { defaultCacheDir } from '../store/default-dir.js';

/** Suffix of the per-task pointer tag. */
export const POINTER_SUFFIX = '.latest';

/** The pointer tag of `task`: `<urlsafe(task)>.latest`, shortened with a hash to fit 128 characters. */
export function pointerTag(task: string): string {
  const safe = urlsafe(task);
  if (safe.length + POINTER_SUFFIX.length <= 128) return `${safe}${POINTER_SUFFIX}`;
  const h = createHash('sha256').update(task).digest('hex').slice(0, 16);
  return `${safe.slice(0, 128 - POINTER_SUFFIX.length - 17)}-${h}${POINTER_SUFFIX}`;
}

/**
 * Default directory of the remembered bases of the entry functions called on their own:
 * `<defaultCacheDir(env)>/bases`. (`createCache()` passes `<its stateDir>/bases` instead.)
 */
export function defaultStateDir(env: Record<string, string | undefined> = process.env): string {
  return join(defaultCacheDir(env), 'bases');
}

function stateFile(stateDir: string, dir: string, location: string, task: string): string {
  const id = createHash('sha256')
    .update(`${resolve(dir)}\0${location}\0${task}`)
    .digest('hex')
    .slice(0, 40);
  return join(stateDir, `${id}.json`);
}

/** The tag remembered for (dir, store, task), if any. Never throws. */
export async function recallBase(
  stateDir: string | false,
  dir: string,
  location: string | undefined,
  task: string,
): Promise<string | undefined> {
  if (stateDir === false || location === undefined) return undefined;
  try {
    const doc = JSON.parse(await readFile(stateFile(stateDir, dir, location, task), 'utf8')) as {
      tag?: unknown;
    };
    return typeof doc.tag === 'string' ? doc.tag : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Remembers `tag` as the base for (dir, store, task). Best effort: never throws. A store without
 * a location has no identity to remember it by: nothing is written.
 */
export async function rememberBase(
  stateDir: string | false,
  dir: string,
  location: string | undefined,
  task: string,
  tag: string,
): Promise<void> {
  if (stateDir === false || location === undefined) return;
  try {
    await mkdir(stateDir, { recursive: true });
    const file = stateFile(stateDir, dir, location, task);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ tag, dir: resolve(dir), store: location, task }));
    await rename(tmp, file);
  } catch {
    // NOTE: a missing state file only costs the next save a pointer-tag lookup.
  }
}

/** Where a base entry stores a chunk: its frame in a layer (in format version 1 the whole layer). */
export interface BaseFrame {
  layer: Descriptor;
  offset: number;
  length: number;
}

/** A base entry: where it stores each uncompressed chunk digest. */
export interface BaseEntry {
  tag: string;
  chunks: Map<string, BaseFrame>;
}

/**
 * Loads the first of `tags` that resolves to a complete, valid entry. Failures (miss, corrupt
 * entry, store error) only mean "no base"; an abort is rethrown.
 */
export async function loadBase(
  store: EntryReader,
  tags: ReadonlyArray<string | undefined>,
  signal?: AbortSignal,
): Promise<BaseEntry | undefined> {
  const seen = new Set<string>();
  for (const tag of tags) {
    if (tag === undefined || seen.has(tag)) continue;
    seen.add(tag);
    try {
      const entry = await resolveEntry(store, tag, { signal, maxEntrySize: Number.POSITIVE_INFINITY });
      if (entry === undefined) continue;
      const chunks = new Map<string, BaseFrame>();
      entry.config.chunks.forEach((c, i) => {
        if (chunks.has(c.digest)) return;
        if (c.layer !== undefined && c.offset !== undefined && c.length !== undefined) {
          const layer = entry.layers[c.layer];
          if (layer !== undefined) chunks.set(c.digest, { layer, offset: c.offset, length: c.length });
          return;
        }
        const layer = entry.layers[i];
        if (layer !== undefined) chunks.set(c.digest, { layer, offset: 0, length: layer.size });
      });
      return { tag, chunks };
    } catch (err) {
      signal?.throwIfAborted();
      void err;
    }
  }
  return undefined;
}
