/**
 * Finds a task's outputs: the paths under `dir` matching its `generates` globs, without
 * following symlinks (a symlink is an output itself, never a way out of the directory).
 */
import { type Dirent, lstatSync, readdirSync, type Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import picomatch from 'picomatch';

/** Prefix of core's own scratch directories inside a task directory (staging, set-aside). */
export const SCRATCH_PREFIX = '.task-cache-';

/** One output path. */
export interface OutputPath {
  /** POSIX path relative to the task directory, no trailing slash. */
  path: string;
  kind: 'file' | 'directory' | 'symlink' | 'other';
  stats: Stats;
}

/**
 * A matcher of `generates` (dotfiles included). Globs starting with `!` are the protected paths
 * that `outputSelection` (internal/validate.ts) appended: a path matching one is never an output.
 */
export function outputMatcher(generates: readonly string[]): (path: string) => boolean {
  const match = picomatch(
    generates.filter((g) => !g.startsWith('!')),
    { dot: true },
  );
  const isProtected = protectedMatcher(generates);
  return (path) => match(path) && !isProtected(path);
}

/**
 * A matcher of the protected paths of an output selection: its `!X` globs, minus its `!!Y` ones
 * (a negated source glob `!Y`: that path is not a source, so not protected by it).
 */
export function protectedMatcher(generates: readonly string[]): (path: string) => boolean {
  const negative = generates.filter((g) => g.startsWith('!') && !g.startsWith('!!')).map((g) => g.slice(1));
  const excluded = generates.filter((g) => g.startsWith('!!')).map((g) => g.slice(2));
  if (negative.length === 0) return () => false;
  const inside = picomatch(negative, { dot: true });
  if (excluded.length === 0) return inside;
  const out = picomatch(excluded, { dot: true });
  return (path) => inside(path) && !out(path);
}

/** Static base directories of the globs, where the walk starts. */
export function bases(generates: readonly string[]): string[] {
  const out = new Set<string>();
  for (const g of generates) {
    if (g.startsWith('!')) continue;
    const { base } = picomatch.scan(g);
    out.add(base.replace(/\/+$/, ''));
  }
  // A base inside another base is walked by the outer one.
  const sorted = [...out].sort((a, b) => a.length - b.length);
  return sorted.filter(
    (b, i) => !sorted.slice(0, i).some((o) => o === '' || b === o || b.startsWith(`${o}/`)),
  );
}

/** Compares two relative paths by their UTF-8 bytes (the archive's order). */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function kindOf(s: Stats | Dirent): OutputPath['kind'] {
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'directory';
  return 'other';
}

/**
 * Lists the outputs of `dir` matching `generates`, sorted by path (UTF-8 byte order). Core's
 * scratch directories (`.task-cache-*` at the top level) are never outputs.
 */
export async function listOutputs(
  dir: string,
  generates: readonly string[],
  signal?: AbortSignal,
): Promise<OutputPath[]> {
  const match = outputMatcher(generates);
  const found: OutputPath[] = [];
  const visit = async (rel: string): Promise<void> => {
    signal?.throwIfAborted();
    let entries: Dirent[];
    try {
      entries = await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true });
    } catch (err) {
      if (
        (err as NodeJS.ErrnoException).code === 'ENOENT' ||
        (err as NodeJS.ErrnoException).code === 'ENOTDIR'
      )
        return;
      throw err;
    }
    const subdirs: string[] = [];
    await Promise.all(
      entries.map(async (e) => {
        if (rel === '' && e.name.startsWith(SCRATCH_PREFIX)) return;
        const p = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) subdirs.push(p);
        if (match(p)) {
          const stats = await lstat(join(dir, p));
          found.push({ path: p, kind: kindOf(stats), stats });
        }
      }),
    );
    for (const s of subdirs) await visit(s);
  };
  for (const base of bases(generates)) {
    if (base === '') {
      await visit('');
      continue;
    }
    let stats: Stats;
    try {
      stats = await lstat(join(dir, base));
    } catch {
      continue;
    }
    if (!base.startsWith(SCRATCH_PREFIX) && match(base))
      found.push({ path: base, kind: kindOf(stats), stats });
    if (stats.isDirectory()) await visit(base);
  }
  return found.sort((a, b) => comparePaths(a.path, b.path));
}

/** Checks that a symlink target stays inside the task directory (relative, no escape). */
export function symlinkStaysInside(path: string, target: string): boolean {
  if (target === '' || posix.isAbsolute(target) || target.includes('\0')) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(path), target));
  return resolved !== '..' && !resolved.startsWith('../');
}

/**
 * Walks the outputs of `dir` matching `generates` (synchronously; staging dirs skipped), calling
 * `make` with each match's relative path and `lstat`, in no particular order. The one walk behind
 * the pack's output list and the up-to-date stamp.
 */
export function walkOutputsSync<T>(
  dir: string,
  generates: readonly string[],
  make: (path: string, stats: Stats) => T,
  aborted: () => boolean = () => false,
): T[] {
  const match = outputMatcher(generates);
  const found: T[] = [];
  const visit = (rel: string): void => {
    if (aborted()) throw new Error('aborted');
    let entries: Dirent[];
    try {
      entries = readdirSync(rel === '' ? dir : join(dir, rel), { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    const subdirs: string[] = [];
    for (const e of entries) {
      if (rel === '' && e.name.startsWith(SCRATCH_PREFIX)) continue;
      const p = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) subdirs.push(p);
      if (match(p)) found.push(make(p, lstatSync(join(dir, p))));
    }
    for (const s of subdirs) visit(s);
  };
  for (const base of bases(generates)) {
    if (base === '') {
      visit('');
      continue;
    }
    let stats: Stats;
    try {
      stats = lstatSync(join(dir, base));
    } catch {
      continue;
    }
    if (!base.startsWith(SCRATCH_PREFIX) && match(base)) found.push(make(base, stats));
    if (stats.isDirectory()) visit(base);
  }
  return found;
}
