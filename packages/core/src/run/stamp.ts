/**
 * The up-to-date stamp (issue 14): after a run saved or restored a task's outputs, a small local
 * file records the key and each output's path, type, size, mode, mtime, ctime and inode. The
 * next run with the same key re-lists the outputs (one synchronous walk, no reads of contents):
 * when every output is exactly as recorded, and none was added or removed, the outputs are what
 * the entry holds and the run restores nothing, the way go-task skips an up-to-date task.
 *
 * NOTE: a stamp can only make a run skip work when nothing changed. Any difference (content
 * rewritten: mtime/ctime/size; replaced: inode; chmod: mode and ctime; a file added or deleted;
 * an unreadable stamp) is a mismatch, and the run restores as before. ctime cannot be set by a
 * user tool, so even a rewrite that keeps the size and resets the mtime is seen.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, type Stats, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { walkOutputsSync } from '../internal/outputs.js';

const VERSION = 1;

/** One output as recorded: path, type, size, mode, mtimeMs, ctimeMs, inode. */
export type Row = [string, 'f' | 'd' | 'l' | 'o', number, number, number, number, number];

interface StampFile {
  v: number;
  key: string;
  outputs: Row[];
}

/** Where the stamp of `task`'s outputs in `dir` (for these `generates`) lives under `stateDir`. */
export function stampPath(stateDir: string, task: string, dir: string, generates: readonly string[]): string {
  const id = createHash('sha256')
    .update(JSON.stringify([resolve(dir), task, generates]))
    .digest('hex')
    .slice(0, 32);
  return join(stateDir, 'stamps', `${id}.json`);
}

function row(path: string, s: Stats): Row {
  const type = s.isFile() ? 'f' : s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : 'o';
  // NOTE: a directory's size and times change when entries are added or renamed inside it, also
  // by the restore's own swap; its children are compared one by one instead.
  if (type === 'd') return [path, type, 0, s.mode, 0, 0, s.ino];
  return [path, type, s.size, s.mode, s.mtimeMs, s.ctimeMs, s.ino];
}

/** The outputs of `dir` matching `generates`, as rows, in a stable order. */
function currentRows(dir: string, generates: readonly string[]): Row[] {
  const rows = walkOutputsSync(dir, generates, row);
  return rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The outputs as a stamp would record them now (`undefined` when they cannot be listed). */
export function snapshotOutputs(dir: string, generates: readonly string[]): Row[] | undefined {
  try {
    return currentRows(dir, generates);
  } catch {
    return undefined;
  }
}

const sameRows = (a: readonly Row[], b: readonly Row[]): boolean =>
  a.length === b.length && a.every((r, i) => r.every((v, j) => v === (b[i] as Row)[j]));

/**
 * Records that the outputs of `dir` are those of the entry `key`. With `before` (a snapshot taken
 * before the save read the outputs), only when nothing changed since: a file rewritten while the
 * save ran is not what the entry holds. Best effort: a stamp that cannot be written only means
 * the next run restores. Writes nothing when there are no outputs.
 */
export function writeStamp(
  file: string,
  key: string,
  dir: string,
  generates: readonly string[],
  before?: readonly Row[],
): void {
  try {
    const outputs = currentRows(dir, generates);
    if (outputs.length === 0 || (before !== undefined && !sameRows(before, outputs))) {
      removeStamp(file);
      return;
    }
    const stamp: StampFile = { v: VERSION, key, outputs };
    mkdirSync(join(file, '..'), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(stamp));
    renameSync(tmp, file);
  } catch {
    removeStamp(file);
  }
}

/** Forgets the stamp (before anything may change the outputs, or after a failure). */
export function removeStamp(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {
    // NOTE: a stamp left behind is re-checked against the outputs anyway.
  }
}

/**
 * `true` when the stamp says the outputs of `dir` are exactly those of the entry `key` and they
 * have not changed since; the number of outputs recorded. Any doubt → `false`.
 */
export function isUpToDate(
  file: string,
  key: string,
  dir: string,
  generates: readonly string[],
): { upToDate: boolean; files: number } {
  let stamp: StampFile;
  try {
    stamp = JSON.parse(readFileSync(file, 'utf8')) as StampFile;
  } catch {
    return { upToDate: false, files: 0 };
  }
  if (stamp?.v !== VERSION || stamp.key !== key || !Array.isArray(stamp.outputs))
    return { upToDate: false, files: 0 };
  let now: Row[];
  try {
    now = currentRows(dir, generates);
  } catch {
    return { upToDate: false, files: 0 };
  }
  if (now.length === 0 || !sameRows(now, stamp.outputs)) return { upToDate: false, files: 0 };
  return { upToDate: true, files: now.filter((r) => r[1] !== 'd').length };
}
