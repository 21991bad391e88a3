import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
const entry = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));

/** What one CLI run printed and returned. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stderr split into lines, without the trailing empty one. */
  lines: string[];
}

/**
 * Runs `task ARGS…` as a real process (tsx + the root tsconfig, so the workspace packages load
 * from src/), with exactly `env` as its environment.
 */
export function runTask(
  args: readonly string[],
  options: { cwd: string; env: Record<string, string | undefined>; onStderr?: (soFar: string) => void },
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, ['--tsconfig', join(repoRoot, 'tsconfig.json'), entry, ...args], {
      cwd: options.cwd,
      env: options.env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
      options.onStderr?.(stderr);
    });
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout,
        stderr,
        lines: stderr.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1),
      }),
    );
  });
}

/** The environment a CI job would have: PATH and HOME only, plus `extra`. */
export function cleanEnv(extra: Record<string, string | undefined>): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...extra };
}

/**
 * A project like the guide's: `src/` with a few files, a `build.sh` that writes `dist/` and
 * appends a line to `builds.log` (outside the outputs) each time it really runs.
 */
export async function makeProject(taskfile: string, buildScript = DEFAULT_BUILD): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'taskfile-project-'));
  await mkdir(join(dir, 'src', 'lib'), { recursive: true });
  await writeFile(join(dir, 'src', 'main.js'), 'import { f } from "./lib/f.js";\nconsole.log(f());\n');
  await writeFile(
    join(dir, 'src', 'lib', 'f.js'),
    `export const f = () => ${JSON.stringify('x'.repeat(5000))};\n`,
  );
  // A unique source per project: tests sharing a registry must not hit each other's entries.
  await writeFile(join(dir, 'src', 'id.txt'), `${randomUUID()}\n`);
  await writeFile(join(dir, 'Taskfile.yml'), taskfile);
  await writeFile(join(dir, 'build.sh'), buildScript);
  await chmod(join(dir, 'build.sh'), 0o755);
  return dir;
}

const DEFAULT_BUILD = `#!/bin/sh
set -eu
echo run >> builds.log
mkdir -p dist/assets
cat src/main.js src/lib/f.js > dist/bundle.js
head -c 300000 /dev/urandom > dist/assets/blob.bin
echo "built"
`;

/** How many times build.sh really ran. */
export async function buildCount(dir: string): Promise<number> {
  try {
    return (await readFile(join(dir, 'builds.log'), 'utf8')).split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

/** sha256 of every file under `root`, by relative path (to compare trees). */
export async function treeDigest(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else
        out[relative(root, path)] = createHash('sha256')
          .update(await readFile(path))
          .digest('hex');
    }
  };
  await walk(root);
  return out;
}

/** The guide's Taskfile, as issue 9 restates it (indentation restored). */
export const GUIDE_TASKFILE = `version: '3'
tasks:
  build:
    sources:
      - src/**
    generates:
      - dist/**
    cache:
      enabled: '{{ne .CI_CACHE_REDIS_URL ""}}'
      url: 'oci://harbor.example.com/task-cache/build:{{urlsafe .TASK}}-{{.CHECKSUM}}'
      lock: 'redis://{{.CI_CACHE_REDIS_URL}}/lock:{{urlsafe .TASK}}-{{.CHECKSUM}}'
    cmds:
      - ./build.sh
`;
