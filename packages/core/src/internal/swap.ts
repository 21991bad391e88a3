/**
 * Moves a verified staging tree into the task directory. The current outputs (paths matching
 * `generates`) are first set aside in a scratch directory; every step is journaled, and any
 * failure undoes the journal in reverse, so the outputs end exactly as they were. Staging and
 * set-aside directories live inside the task directory: renames stay on one file system.
 */
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readlink,
  realpath,
  rename,
  rm,
  rmdir,
  utimes,
} from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { EntryOutputsError, EntryRefusedError } from '../errors.js';
import { listOutputs, SCRATCH_PREFIX } from './outputs.js';
import type { ExtractedEntry } from './tar-extract.js';

type Step =
  | { op: 'rename'; from: string; to: string }
  | { op: 'mkdir'; path: string }
  | { op: 'rmdir'; path: string; mode: number };

async function undo(journal: Step[]): Promise<boolean> {
  let clean = true;
  for (const step of journal.reverse()) {
    try {
      if (step.op === 'rename') await rename(step.to, step.from);
      else if (step.op === 'mkdir') await rmdir(step.path);
      else await mkdir(step.path, { mode: step.mode });
    } catch {
      // NOTE: best effort; the set-aside directory is then kept so nothing is lost.
      clean = false;
    }
  }
  return clean;
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Most symlinks followed while resolving one target (Linux's own limit is 40). */
const MAX_HOPS = 40;

/**
 * `true` when the symlink at `path` (relative to `dir`) with target `target` resolves inside `dir`
 * on the real file system: every component is looked up, and symlinks met on the way (of the
 * entry or already in the task directory) are followed. A dangling remainder is resolved
 * lexically. An absolute target of an existing symlink counts as inside only under `dir`.
 */
export async function resolvesInside(dir: string, path: string, target: string): Promise<boolean> {
  const realDir = await realpath(dir).catch(() => dir);
  const stack = path.split('/').slice(0, -1);
  const queue = target.split('/');
  let hops = 0;
  let exists = true;
  while (queue.length > 0) {
    const s = queue.shift() as string;
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (stack.length === 0) return false;
      stack.pop();
      continue;
    }
    stack.push(s);
    if (!exists) continue;
    const abs = join(dir, ...stack);
    const st = await lstat(abs).catch(() => undefined);
    if (st === undefined) {
      exists = false;
      continue;
    }
    if (!st.isSymbolicLink()) continue;
    if (++hops > MAX_HOPS) return false;
    const next = await readlink(abs);
    stack.pop();
    if (isAbsolute(next)) {
      const base = [dir, realDir].find((d) => next === d || next.startsWith(`${d}/`));
      if (base === undefined) return false;
      stack.length = 0;
      queue.unshift(...next.slice(base.length).split('/'));
    } else {
      queue.unshift(...next.split('/'));
    }
  }
  return true;
}

/**
 * Replaces the outputs of `dir` with the entries in `staging`; resolves the number of files
 * (and symlinks) matching `generates` that the entry does not hold, which the restore removed.
 * Paths the selection protects (its `!` globs: sources, `.git`) are never set aside or replaced.
 * @throws {EntryRefusedError} when a destination would be written through a symlink.
 */
export async function swapIntoPlace(
  dir: string,
  staging: string,
  entries: readonly ExtractedEntry[],
  generates: readonly string[],
): Promise<number> {
  const journal: Step[] = [];
  const aside = await mkdtemp(join(dir, `${SCRATCH_PREFIX}old-`));
  let ok = false;
  let removed = 0;
  try {
    // 1. Set the current outputs aside (files and symlinks; directories stay in place).
    const current = await listOutputs(dir, generates);
    const newDirs = new Set(entries.filter((e) => e.type === 'directory').map((e) => e.path));
    const asideDirs = new Set<string>();
    const incoming = new Set(entries.map((e) => e.path));
    for (const o of current) {
      if (o.kind === 'directory') continue;
      if (!incoming.has(o.path)) removed++;
      const from = join(dir, o.path);
      const to = join(aside, o.path);
      const parent = o.path.split('/').slice(0, -1).join('/');
      if (parent !== '' && !asideDirs.has(parent)) {
        await mkdir(join(aside, parent), { recursive: true });
        asideDirs.add(parent);
      }
      await rename(from, to);
      journal.push({ op: 'rename', from, to });
    }
    // Output directories that the entry does not have and that are now empty go too.
    for (const o of [...current].reverse()) {
      if (o.kind !== 'directory' || newDirs.has(o.path)) continue;
      try {
        await rmdir(join(dir, o.path));
        journal.push({ op: 'rmdir', path: join(dir, o.path), mode: o.stats.mode & 0o7777 });
      } catch {
        // not empty: it holds non-output files; leave it
      }
    }
    // 2. Move the new entries in, creating parents; never through a symlink.
    const checked = new Set<string>(['']);
    const ensureParents = async (path: string) => {
      const segs = path.split('/');
      for (let i = 1; i < segs.length; i++) {
        const rel = segs.slice(0, i).join('/');
        if (checked.has(rel)) continue;
        const abs = join(dir, rel);
        const s = await lstat(abs).catch(() => undefined);
        if (s === undefined) {
          await mkdir(abs);
          journal.push({ op: 'mkdir', path: abs });
        } else if (s.isSymbolicLink()) {
          throw new EntryRefusedError(
            `entry path ${JSON.stringify(path)} refused: ${JSON.stringify(rel)} in the task directory is a symlink`,
            { path },
          );
        } else if (!s.isDirectory()) {
          throw new EntryOutputsError(
            `cannot restore ${JSON.stringify(path)}: ${JSON.stringify(rel)} is not a directory`,
            { path },
          );
        }
        checked.add(rel);
      }
    };
    // Directories moved in whole, with everything staged below them.
    const moved = new Set<string>();
    const insideMoved = (path: string) => {
      for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
        if (moved.has(path.slice(0, i))) return true;
      }
      return false;
    };
    for (const e of entries) {
      if (moved.size > 0 && insideMoved(e.path)) continue;
      await ensureParents(e.path);
      const to = join(dir, e.path);
      if (e.type === 'directory') {
        const s = await lstat(to).catch(() => undefined);
        if (s === undefined) {
          // NOTE: nothing is at this path: move the staged directory with its whole (verified)
          // subtree in one rename — a cold restore of 20 000 files is a few renames, not 20 000.
          const from = join(staging, e.path);
          await rename(from, to);
          journal.push({ op: 'rename', from, to });
          moved.add(e.path);
          checked.add(e.path);
          continue;
        }
        if (!s.isDirectory()) {
          throw new EntryOutputsError(
            `cannot restore directory ${JSON.stringify(e.path)}: a non-output file is in the way`,
            { path: e.path },
          );
        }
        checked.add(e.path);
        continue;
      }
      if (await exists(to)) {
        throw new EntryOutputsError(
          `cannot restore ${JSON.stringify(e.path)}: a non-output file is in the way`,
          { path: e.path },
        );
      }
      const from = join(staging, e.path);
      await rename(from, to);
      journal.push({ op: 'rename', from, to });
    }
    // 3. Symlinks, now in place, must still resolve inside the task directory through the real
    // file system: a target lexically inside can pass through a symlink that was already in the
    // task directory and points out (issue 16: reading the restored link read an outside file).
    for (const e of entries) {
      if (e.type !== 'symlink' || e.linkname === undefined) continue;
      if (!(await resolvesInside(dir, e.path, e.linkname))) {
        throw new EntryRefusedError(
          `entry path ${JSON.stringify(e.path)} refused: symlink to ${JSON.stringify(e.linkname)} resolves outside the task directory through the file system`,
          { path: e.path },
        );
      }
    }
    // 4. Directory modes and mtimes last (deepest first), so read-only directories can be filled.
    for (const e of [...entries].reverse()) {
      if (e.type !== 'directory') continue;
      await chmod(join(dir, e.path), e.mode);
      if (e.mtime) await utimes(join(dir, e.path), e.mtime, e.mtime);
    }
    ok = true;
  } catch (err) {
    if (await undo(journal)) await rm(aside, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
  if (ok) await rm(aside, { recursive: true, force: true });
  return removed;
}
