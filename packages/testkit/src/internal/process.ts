import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { TestkitError } from '../errors.js';
import { onPath } from './tools.js';

/** Children started by any fixture in this process that have not exited yet. */
const live = new Set<ChildProcess>();
/** Temp dirs created by fixtures in this process that have not been removed yet. */
const tempDirs = new Set<string>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  // NOTE: 'exit' handlers must be synchronous. A crashed or aborted test run still reaches
  // this point (unless the worker itself is SIGKILLed), so no server outlives it.
  process.on('exit', cleanUpNow);
  // NOTE: vitest stops its fork workers with SIGTERM (then SIGKILL after 500 ms), which skips
  // 'exit' handlers. Clean up, then re-raise the signal with its default action so the process
  // still dies the way it was asked to (unless someone else handles the signal).
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanUpNow();
      process.off(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** SIGKILLs every live child and removes the temp dirs, synchronously. */
function cleanUpNow(): void {
  for (const child of live) {
    try {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}

/**
 * Appends `PID NAME` to the file named by `TASK_CACHE_TEST_PIDFILE` (read at call time, so a
 * test may point it elsewhere). `.ci/run` fails when any listed process is alive after the suite.
 */
export function recordPid(pid: number, name: string): void {
  const file = process.env.TASK_CACHE_TEST_PIDFILE;
  if (!file) return;
  appendFileSync(file, `${pid} ${name}\n`);
}

let pdeathsig: boolean | undefined;
const usePdeathsig = (): boolean => {
  // The parent-death signal belongs to the spawning *thread*; only use it on the main thread.
  pdeathsig ??= process.platform === 'linux' && isMainThread && onPath('setpriv');
  return pdeathsig;
};

/** A started child whose exit can be awaited and whose recent output is kept for error messages. */
export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code / signal once the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process has exited. */
  hasExited(): boolean;
  /** The last few KiB of stdout + stderr. */
  output(): string;
}

const OUTPUT_LIMIT = 16 * 1024;

/**
 * Spawns `command`, records its PID and kills it when this process exits.
 * Throws {@link TestkitError} `TESTKIT_ERR_SPAWN_FAILED` when the binary cannot be started.
 */
export async function spawnTracked(
  name: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<TrackedProcess> {
  installExitHandler();
  // NOTE: vitest ends its worker processes with a signal, so 'exit' handlers do not run
  // there. `setpriv --pdeathsig KILL` (util-linux, always on Debian) makes the kernel SIGKILL
  // the server when the process that spawned it dies, however it dies; setpriv execs the
  // server, so the PID we record is the server's own.
  const [file, argv] = usePdeathsig()
    ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, [...args]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  const append = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolve({ code, signal });
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (error) => {
      done = true;
      reject(
        new TestkitError('TESTKIT_ERR_SPAWN_FAILED', `cannot start ${name} (${command}): ${error.message}`, {
          cause: error,
        }),
      );
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new TestkitError('TESTKIT_ERR_SPAWN_FAILED', `cannot start ${name}: no pid`);
  live.add(child);
  recordPid(pid, name);
  return {
    child,
    pid,
    exited,
    hasExited: () => done,
    output: () => out,
  };
}

/** Sends `signal` (default SIGTERM), escalates to SIGKILL after `graceMs`, and waits for the exit. */
export async function terminate(proc: TrackedProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
  if (proc.hasExited()) return;
  try {
    // A stopped process does not act on SIGTERM until continued.
    proc.child.kill('SIGCONT');
    proc.child.kill(signal);
  } catch {
    // already gone
  }
  if (signal !== 'SIGKILL') {
    const timer = setTimeout(() => {
      try {
        proc.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    await proc.exited;
    clearTimeout(timer);
  } else {
    await proc.exited;
  }
}

/** Creates a temp dir that is removed by {@link removeTempDir} or, at the latest, when the process exits. */
export function makeTempDir(prefix: string): string {
  installExitHandler();
  const dir = mkdtempSync(join(tmpdir(), `task-cache-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes a dir made by {@link makeTempDir}. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns true. Fails fast with the process output when `proc` exits,
 * and with `TESTKIT_ERR_TIMEOUT` after `timeoutMs`.
 */
export async function waitUntil(
  what: string,
  proc: TrackedProcess,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    if (proc.hasExited()) {
      const { code, signal } = await proc.exited;
      throw new TestkitError(
        'TESTKIT_ERR_START_FAILED',
        `${what} exited during start-up (code ${code}, signal ${signal}):\n${proc.output()}`,
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new TestkitError(
        'TESTKIT_ERR_TIMEOUT',
        `${what} did not become ready within ${timeoutMs} ms:\n${proc.output()}`,
      );
    }
    await sleep(delay);
  }
}
