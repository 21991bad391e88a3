/**
 * The local `.task/` fingerprint, as Task keeps it: `.task/checksum/<task>` holds the checksum of
 * the task's sources at its last successful run. An unchanged task whose outputs are present is
 * up to date and does nothing (no cache lookup either).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { glob } from 'tinyglobby';

/** The fingerprint file of `task` under `rootDir` (the Taskfile's directory). */
export function fingerprintPath(rootDir: string, task: string): string {
  return join(rootDir, '.task', 'checksum', task.replace(/[^A-Za-z0-9._-]/g, '-'));
}

/** The stored checksum, or `undefined` when there is none. */
export async function readFingerprint(rootDir: string, task: string): Promise<string | undefined> {
  try {
    return (await readFile(fingerprintPath(rootDir, task), 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Stores `checksum` for `task` (atomically: a crash never leaves a half-written fingerprint). */
export async function writeFingerprint(rootDir: string, task: string, checksum: string): Promise<void> {
  const path = fingerprintPath(rootDir, task);
  await mkdir(join(rootDir, '.task', 'checksum'), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${checksum}\n`);
  await rename(tmp, path);
}

/** `true` when every `generates` glob matches at least one file in `dir`. */
export async function outputsPresent(dir: string, generates: readonly string[]): Promise<boolean> {
  for (const pattern of generates) {
    const found = await glob(pattern, { cwd: dir, dot: true, onlyFiles: false, expandDirectories: false });
    if (found.length === 0) return false;
  }
  return true;
}

/**
 * Whether the task can be skipped: it has sources, the fingerprint equals `checksum`, and its
 * outputs are present.
 */
export async function isUpToDate(options: {
  rootDir: string;
  dir: string;
  task: string;
  checksum: string;
  sources: readonly string[];
  generates: readonly string[];
}): Promise<boolean> {
  if (options.sources.length === 0) return false;
  const stored = await readFingerprint(options.rootDir, options.task);
  if (stored !== options.checksum) return false;
  return outputsPresent(options.dir, options.generates);
}
