/**
 * Spawns the BUILT `task-cache` binary (packages/cli/dist/bin.js), as a user's shell would: no
 * in-process shortcut. Run `pnpm build` first.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built binary. */
export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

/** Throws unless the package is built (the tests run the binary, not the sources). */
export function requireBuilt(): void {
  if (!existsSync(BIN))
    throw new Error(`${BIN} is missing: run pnpm build first (the CLI tests spawn the binary)`);
}

/** What one `task-cache` process did. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A temp dir holding a project dir and an empty HOME; `env` points every state dir into it. */
export async function sandbox(): Promise<{
  root: string;
  project: string;
  env: Record<string, string>;
  cleanup: () => Promise<void>;
}> {
  const root = await mkdtemp(join(tmpdir(), 'tc-cli-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: join(root, 'home'),
    TASK_CACHE_DIR: join(root, 'cache'),
    XDG_CACHE_HOME: join(root, 'xdg'),
  };
  return {
    root,
    project: join(root, 'project'),
    env,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** Starts `task-cache ARGS` in `cwd` with exactly `env` (plus PATH). */
export function start(args: readonly string[], cwd: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Collects a started process's output and exit. */
export function finished(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs `task-cache ARGS` to the end. */
export function cli(args: readonly string[], cwd: string, env: Record<string, string>): Promise<CliResult> {
  return finished(start(args, cwd, env));
}
