/**
 * Extracts an entry's tar stream into a fresh staging directory, refusing anything a restore
 * must never write (see docs/format.md "Restore safety"). Nothing is written outside `staging`.
 */
import { createWriteStream } from 'node:fs';
import { chmod, lutimes, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { finished } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { EntryCorruptError, EntryRefusedError, TaskCacheError } from '../errors.js';
import { SCRATCH_PREFIX } from './outputs.js';
import { symlinkStaysInside } from './tar-pack.js';

/** One extracted entry, in archive order. */
export interface ExtractedEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  mtime: Date | undefined;
  linkname?: string;
}

/** Options of {@link extractTo}. */
export interface ExtractOptions {
  /** Only paths for which this returns `true` may be written. */
  allowed: (path: string) => boolean;
  /** Apply the archive's mtimes (entries saved with `keepMtimes`). */
  keepMtimes: boolean;
  signal?: AbortSignal;
  /** Called when extraction fails, to stop the producer of `source` promptly. */
  onFail?: (err: unknown) => void;
}

const SMALL_FILE = 256 * 1024;

const refuse = (path: string, why: string) =>
  new EntryRefusedError(`entry path ${JSON.stringify(path)} refused: ${why}`, { path });

/** Validates and normalizes an archive path; throws {@link EntryRefusedError}. */
export function safePath(name: string): string {
  if (name.includes('\0')) throw refuse(name, 'contains a NUL byte');
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name) || name.startsWith('\\'))
    throw refuse(name, 'absolute path');
  const trimmed = name.replace(/\/+$/, '');
  const parts = trimmed.split('/');
  if (parts.includes('..')) throw refuse(name, 'contains ".."');
  const clean = parts.filter((p) => p !== '' && p !== '.').join('/');
  if (clean === '') throw refuse(name, 'empty path');
  if (clean.startsWith(SCRATCH_PREFIX))
    throw refuse(name, `names reserved for task-cache's scratch directories start with ${SCRATCH_PREFIX}`);
  return clean;
}

function waitDrain(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/**
 * Extracts `source` (the entry's uncompressed archive, in order) into `staging`, returning the
 * entries written. Symlinks are checked at the end against the whole entry: none may point
 * outside the task directory, directly or through another symlink of the entry.
 */
export async function extractTo(
  staging: string,
  source: AsyncIterable<Uint8Array>,
  options: ExtractOptions,
): Promise<ExtractedEntry[]> {
  const extract = tar.extract();
  const entries: ExtractedEntry[] = [];
  const types = new Map<string, ExtractedEntry['type']>();
  const made = new Set<string>();
  const ensureDir = async (abs: string) => {
    if (made.has(abs)) return;
    await mkdir(abs, { recursive: true });
    made.add(abs);
  };
  let feedError: unknown;
  // The entry being written: destroyed with the feed's error, or its reader would wait forever.
  let current: { destroy(err?: Error): void } | undefined;

  const feeding = (async () => {
    try {
      for await (const piece of source) {
        if (extract.destroyed) return;
        if (!extract.write(piece)) await waitDrain(extract);
      }
      if (!extract.destroyed) (extract as unknown as { end(): void }).end();
    } catch (err) {
      feedError = err;
      current?.destroy(err as Error);
      extract.destroy(err as Error);
    }
  })();

  try {
    for await (const entry of extract) {
      current = entry;
      options.signal?.throwIfAborted();
      const h = entry.header;
      const path = safePath(h.name);
      if (h.type !== 'file' && h.type !== 'directory' && h.type !== 'symlink') {
        const what = h.type === 'link' ? 'hardlink' : (h.type ?? 'unknown type');
        throw refuse(path, `${what} entries are not allowed`);
      }
      const mode = h.mode ?? (h.type === 'directory' ? 0o755 : 0o644);
      if (mode & 0o6000) throw refuse(path, 'setuid/setgid bit');
      if (!options.allowed(path)) throw refuse(path, "outside the task's generates");
      if (types.has(path)) throw refuse(path, 'duplicate entry');
      // Parents must be directories of this entry (or implied ones), never its files or symlinks.
      const segs = path.split('/');
      for (let i = 1; i < segs.length; i++) {
        const parent = segs.slice(0, i).join('/');
        const t = types.get(parent);
        if (t === 'symlink')
          throw refuse(path, `would be written through the symlink ${JSON.stringify(parent)}`);
        if (t === 'file') throw refuse(path, `parent ${JSON.stringify(parent)} is a file`);
      }
      const target = join(staging, path);
      const mtime = options.keepMtimes && h.mtime ? h.mtime : undefined;
      if (h.type === 'directory') {
        entry.resume();
        await ensureDir(target);
        entries.push({ path, type: 'directory', mode: mode & 0o777, mtime });
      } else if (h.type === 'symlink') {
        entry.resume();
        const linkname = h.linkname ?? '';
        if (!symlinkStaysInside(path, linkname))
          throw refuse(path, `symlink to ${JSON.stringify(linkname)} leaves the task directory`);
        await ensureDir(posix.dirname(target));
        await symlink(linkname, target);
        if (mtime) await lutimes(target, mtime, mtime).catch(() => {});
        entries.push({ path, type: 'symlink', mode: mode & 0o777, mtime, linkname });
      } else {
        await ensureDir(posix.dirname(target));
        if ((h.size ?? 0) <= SMALL_FILE) {
          // Small files in one write: per-file stream set-up dominates restores of many files.
          const parts: Uint8Array[] = [];
          for await (const piece of entry) parts.push(piece as Uint8Array);
          await writeFile(target, parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts), {
            flag: 'wx',
            mode: 0o600,
          });
        } else {
          const out = createWriteStream(target, { flags: 'wx', mode: 0o600 });
          try {
            for await (const piece of entry) {
              if (!out.write(piece)) await waitDrain(out);
            }
            out.end();
            await finished(out);
          } catch (err) {
            out.destroy();
            throw err;
          }
        }
        await chmod(target, mode & 0o777);
        if (mtime) await utimes(target, mtime, mtime);
        entries.push({ path, type: 'file', mode: mode & 0o777, mtime });
      }
      types.set(path, entries[entries.length - 1]!.type);
    }
  } catch (err) {
    options.onFail?.(err);
    extract.destroy();
    await feeding;
    if (feedError !== undefined) throw feedError;
    throw err instanceof EntryRefusedError || isAbort(err, options.signal) ? err : wrapTar(err);
  }
  await feeding;
  if (feedError !== undefined) throw feedError;
  checkSymlinkChains(entries, types);
  return entries;
}

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && err === signal.reason;
}

function wrapTar(err: unknown): unknown {
  // File-system failures (ENOSPC, EACCES…) and our own typed errors pass through unchanged.
  if (err instanceof TaskCacheError || typeof (err as { syscall?: unknown })?.syscall === 'string')
    return err;
  return new EntryCorruptError(`entry archive is malformed: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

/**
 * Walks each symlink's target segment by segment: passing through another symlink of the entry
 * (which could lead anywhere lexical checks cannot see) is refused.
 */
function checkSymlinkChains(
  entries: readonly ExtractedEntry[],
  types: Map<string, ExtractedEntry['type']>,
): void {
  for (const e of entries) {
    if (e.type !== 'symlink' || e.linkname === undefined) continue;
    const stack = posix.dirname(e.path) === '.' ? [] : posix.dirname(e.path).split('/');
    const segs = e.linkname.split('/').filter((s) => s !== '' && s !== '.');
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i] as string;
      if (s === '..') {
        if (stack.length === 0) throw refuse(e.path, 'symlink leaves the task directory');
        stack.pop();
        continue;
      }
      stack.push(s);
      if (i < segs.length - 1 && types.get(stack.join('/')) === 'symlink') {
        throw refuse(e.path, `symlink target goes through the symlink ${JSON.stringify(stack.join('/'))}`);
      }
    }
  }
}
