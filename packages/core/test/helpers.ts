/** Fixtures for entry tests: temp task directories, generated outputs, tree hashes. */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, vi } from 'vitest';

/** A fresh temp directory; `cleanup` removes it. */
export async function tempDir(prefix = 'tc-entry-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * For a test file whose entry functions run with their default `stateDir`
 * (`<defaultCacheDir(process.env)>/bases`, e.g. in the conformance suite): points
 * `TASK_CACHE_DIR` at a temp dir for the whole file, so no remembered base lands under HOME.
 */
export function isolateCacheDir(): void {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await tempDir('tc-cache-dir-');
    vi.stubEnv('TASK_CACHE_DIR', dir);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    if (dir !== undefined) await removeDir(dir);
  });
}

/** Writes `files` (relative path → content) under `dir`, creating parents. */
export async function writeTree(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

/**
 * A digest of the tree under `dir` (optionally only below `sub`): paths, types, permission bits,
 * contents and symlink targets, in sorted order. Equal trees give equal digests.
 */
export async function treeHash(dir: string, sub = ''): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const p = rel === '' ? name : `${rel}/${name}`;
      if (rel === '' && name.startsWith('.task-cache-')) continue;
      const s = await lstat(join(dir, p));
      if (s.isSymbolicLink()) h.update(`L ${p} -> ${await readlink(join(dir, p))}\n`);
      else if (s.isDirectory()) {
        h.update(`D ${p} ${(s.mode & 0o777).toString(8)}\n`);
        await walk(p);
      } else {
        const fh = createHash('sha256');
        fh.update(await readFile(join(dir, p)));
        h.update(`F ${p} ${(s.mode & 0o777).toString(8)} ${s.size} ${fh.digest('hex')}\n`);
      }
    }
  };
  await walk(sub);
  return h.digest('hex');
}

/** Deterministic pseudo-random bytes (so two runs build the same outputs). */
export function seededBytes(size: number, seed: number): Buffer {
  const key = createHash('sha256').update(`seed:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

export { randomBytes };

/**
 * Runs a child process to its exit and returns its exit code and what it wrote (the fixtures'
 * children print one JSON line last). Nothing on standard input.
 */
export async function runChild(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; out: string; err: string; lastLine: string }> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, out, err, lastLine: out.trim().split('\n').at(-1) ?? '' };
}
