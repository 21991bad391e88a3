/**
 * `task-cache run [options] [TASK] [-- COMMAND [ARGS…]]`: runs a command under the cache.
 *
 * The command's line enters the key beside the sources, the named environment variables and the
 * tools. On a miss the command runs with its stdout and stderr shown live and recorded (the output
 * log, ./logs.ts), and when it exits 0 its outputs and the log are saved; a command that fails is
 * never saved and its exit code is the CLI's. On a hit the outputs are restored and the log replayed.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import {
  CacheConfigError,
  type CacheEvent,
  type CacheOptions,
  CacheRunError,
  createCache,
  formatEvent,
  type RunResult,
  urlsafe,
} from '@task-cache/core';
import { parseRunArgs } from './args.js';
import { EXIT } from './errors.js';
import { LOG_DIR, type LogRecorder, logPath, recordLog, replayLog } from './logs.js';
import { progressLine } from './progress.js';
import { type CliIo, keyOptions, type Settings, settings, shellQuote } from './settings.js';

export type { CliIo } from './settings.js';

/** The command exited non-zero (or was killed): carries the exit code the CLI exits with. */
class CommandFailed extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

const signalExit = (signal: NodeJS.Signals): number => 128 + (constants.signals[signal] ?? 15);

export const RUN_USAGE = `Usage: task-cache run [options] [TASK] [-- COMMAND [ARGS...]]

Runs COMMAND under the cache: restores its outputs and replays its output on a hit, runs it and
saves its outputs and output on a miss (only when it exits 0). TASK names a task of task-cache.json
(or package.json "taskCache"). Every option has an environment twin (in brackets).

  -t, --task NAME        task name, part of the key              [TASK_CACHE_TASK]
      --sources GLOB     input files (repeatable)                [TASK_CACHE_SOURCES, space-separated]
      --generates GLOB   output files (repeatable)               [TASK_CACHE_GENERATES]
      --env NAME         env variable whose value enters the key [TASK_CACHE_ENV]
      --tool NAME=VER    tool version that enters the key        [TASK_CACHE_TOOLS]
      --cwd DIR          task directory (globs are relative)     [TASK_CACHE_CWD]
      --cache URL        store URL (default: embedded cache)     [TASK_CACHE_URL]
      --lock URL         lock URL (default: local lock)          [TASK_CACHE_LOCK_URL]
      --quiet-hit        on a hit, print one line, not the log   [TASK_CACHE_QUIET_HIT]
      --json             print the result as JSON on stdout      [TASK_CACHE_JSON]
      --strict           cache trouble fails the run             [TASK_CACHE_STRICT]
      --read-only        restore, never save                     [TASK_CACHE_READ_ONLY]
      --force            rebuild and overwrite the entry         [TASK_CACHE_FORCE]
      --no-progress      no progress line on a TTY               [TASK_CACHE_NO_PROGRESS]
      --explain          on a miss, print which inputs changed   [TASK_CACHE_EXPLAIN]
      --summary FILE     write the run summary JSON to FILE      [TASK_CACHE_SUMMARY]
      --format-version N entry format of saves: 2 (packs, default) or 1  [TASK_CACHE_FORMAT_VERSION]

Exit: the command's code on a miss; 0 on a hit; 64 usage error; 78 cache configuration error
(--strict); 75 cache trouble (--strict); 127 command not found; 128+N killed by signal N.
`;

/** Runs the command with its output shown live and recorded; resolves when it exited 0. */
function execute(
  s: Settings,
  io: CliIo,
  log: LogRecorder,
  signal: AbortSignal,
  forwarded: () => NodeJS.Signals | undefined,
): Promise<void> {
  const childEnv = { ...io.env };
  // NOTE: the command's streams are pipes; tools that colour only on a TTY are told to colour anyway
  // when ours is one (the replay then shows the same colours). NO_COLOR and an explicit FORCE_COLOR win.
  if (io.stdout.isTTY && childEnv.FORCE_COLOR === undefined && childEnv.NO_COLOR === undefined)
    childEnv.FORCE_COLOR = '1';
  // NOTE: without a terminal, the command gets its own process group so a forwarded signal reaches
  // the whole tree (`sh -c 'a; b'` would otherwise die and leave `b` holding the pipes open). On a
  // terminal it stays in ours: Ctrl-C then reaches it directly and it can still read the terminal.
  const detached = process.platform !== 'win32' && !process.stdin.isTTY;
  return new Promise<void>((resolvePromise, reject) => {
    const child = spawn(s.command.file, s.command.args, {
      cwd: s.dir,
      env: childEnv,
      stdio: ['inherit', 'pipe', 'pipe'],
      detached,
    });
    let escalate: NodeJS.Timeout | undefined;
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (detached && child.pid !== undefined) process.kill(-child.pid, sig);
        else child.kill(sig);
      } catch {
        // already gone
      }
    };
    const onAbort = () => {
      kill(forwarded() ?? 'SIGTERM');
      // A command that ignores the signal is killed after 5 s.
      escalate = setTimeout(() => kill('SIGKILL'), 5000);
      escalate.unref();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    const pipe = (from: NodeJS.ReadableStream, to: NodeJS.WritableStream, id: 1 | 2) => {
      from.on('data', (chunk: Buffer) => {
        log.write(id, chunk);
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
    };
    // Under --json the command's stdout goes to stderr: stdout carries only the result.
    pipe(child.stdout!, s.json ? io.stderr : io.stdout, 1);
    pipe(child.stderr!, io.stderr, 2);
    child.once('error', (error: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', onAbort);
      reject(
        new CommandFailed(
          error.code === 'ENOENT' || error.code === 'EACCES' ? EXIT.commandNotFound : EXIT.internal,
          `cannot start ${shellQuote(s.command.file)}: ${error.code === 'ENOENT' ? 'command not found' : error.message}`,
        ),
      );
    });
    child.once('close', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      clearTimeout(escalate);
      if (signal.aborted) reject(signal.reason);
      else if (code === 0) resolvePromise();
      else if (sig) reject(new CommandFailed(signalExit(sig), `the command was killed by ${sig}`));
      else reject(new CommandFailed(code ?? EXIT.internal, `the command exited with ${code}`));
    });
  });
}

/** `task-cache run`: returns the exit code. */
export async function runCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const flags = parseRunArgs(argv);
  if (flags.help) {
    io.stdout.write(RUN_USAGE);
    return EXIT.ok;
  }
  const s = await settings(flags, io);
  const progress = progressLine(io.stderr, s.progress);
  const say = (line: string) => {
    progress.clear();
    io.stderr.write(`${line}\n`);
  };
  let restoredLine: string | undefined;
  let missSaid = false;
  const onEvent = (event: CacheEvent) => {
    if (event.type === 'progress') return progress.update(event);
    // NOTE: core looks up again once it holds the lock (a peer may have saved meanwhile) and
    // reports that second miss too: one "cache miss" line per run is enough.
    // NOTE: an up-to-date hit (core's stamp: the outputs are already the entry's) ends like any hit,
    // with the guide's "restored from cache" line after the replayed log; --json says reason up-to-date.
    if (event.type === 'up-to-date') return;
    if (event.type === 'miss') {
      if (missSaid) return;
      missSaid = true;
    }
    const line = formatEvent(event);
    if (line === undefined) return;
    // The restored line comes after the replayed log, as the last word of a hit.
    if (event.type === 'restored') restoredLine = line;
    else say(line);
  };
  const options: CacheOptions = {
    store: s.cache,
    lock: s.lock,
    strict: s.strict,
    readOnly: s.readOnly,
    force: s.force,
    explain: s.explain,
    // Unset: core's default version (1, which every reader reads).
    ...(s.formatVersion !== undefined ? { formatVersion: s.formatVersion } : {}),
    env: io.env,
    onEvent,
  };
  let cache: ReturnType<typeof createCache>;
  try {
    cache = createCache(options);
  } catch (error) {
    if (!(error instanceof CacheConfigError)) throw error;
    if (s.strict) {
      say(`task-cache: cache configuration error (${error.code}): ${error.message}`);
      return EXIT.cacheConfig;
    }
    // Cache trouble never fails the build: run the command without the cache.
    say(`task: ${JSON.stringify(s.task)} cache warning: ${error.message}; running without the cache`);
    cache = createCache({ enabled: false, env: io.env, onEvent });
  }
  const code = await runOnce(s, io, cache, say, () => restoredLine, progress);
  if (code !== RETRY_UNCACHED) return code;
  // A configuration error found by the run (before the command started): the same, without the cache.
  return runOnce(
    s,
    io,
    createCache({ enabled: false, env: io.env, onEvent }),
    say,
    () => restoredLine,
    progress,
  );
}

/** Returned by {@link runOnce} for a non-strict configuration error: run again without the cache. */
const RETRY_UNCACHED = -1;

async function runOnce(
  s: Settings,
  io: CliIo,
  cache: ReturnType<typeof createCache>,
  say: (line: string) => void,
  restoredLine: () => string | undefined,
  progress: ReturnType<typeof progressLine>,
): Promise<number> {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received) return;
    received = sig;
    controller.abort(new CommandFailed(signalExit(sig), `interrupted by ${sig}`));
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, onSignal);

  const log = logPath(urlsafe(s.task));
  let started = false;
  let retry = false;
  const report = (status: string, exitCode: number, result?: RunResult) => {
    progress.clear();
    if (!s.json) return;
    io.stdout.write(
      `${JSON.stringify({
        task: s.task,
        status,
        exitCode,
        ...(result ? { key: result.key, ...(result.reason ? { reason: result.reason } : {}) } : {}),
        command: s.command.line,
        ...(result ? { stats: result.stats } : {}),
      })}\n`,
    );
  };
  try {
    const result = await cache.run(
      {
        ...keyOptions(s, io),
        generates: [...s.generates, log],
        signal: controller.signal,
      },
      async ({ signal }) => {
        started = true;
        const recorder = await recordLog(join(s.dir, log));
        try {
          await execute(s, io, recorder, signal, () => received);
        } catch (error) {
          await recorder.discard();
          throw error;
        }
        await recorder.commit();
      },
    );
    if (result.status === 'restored') {
      if (!s.quietHit) await replayLog(join(s.dir, log), s.json ? io.stderr : io.stdout, io.stderr);
      say(restoredLine() ?? `task: ${JSON.stringify(s.task)} restored from cache`);
    }
    report(result.status, EXIT.ok, result);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommandFailed) {
      if (received) say(`task: ${JSON.stringify(s.task)} ${error.message}, nothing saved`);
      else if (error.exitCode === EXIT.commandNotFound) say(`task-cache: ${error.message}`);
      report(received ? 'interrupted' : 'failed', error.exitCode);
      return error.exitCode;
    }
    if (controller.signal.aborted && received) {
      say(`task: ${JSON.stringify(s.task)} interrupted by ${received}, nothing saved`);
      report('interrupted', signalExit(received));
      return signalExit(received);
    }
    if (error instanceof CacheConfigError && !started && !s.strict) {
      say(`task: ${JSON.stringify(s.task)} cache warning: ${error.message}; running without the cache`);
      retry = true;
      return RETRY_UNCACHED;
    }
    if (error instanceof CacheConfigError) {
      say(`task-cache: cache configuration error (${error.code}): ${error.message}`);
      report('cache-config-error', EXIT.cacheConfig);
      return EXIT.cacheConfig;
    }
    if (error instanceof CacheRunError) {
      say(`task-cache: cache trouble in strict mode (${error.reason}): ${error.message}`);
      report('cache-error', EXIT.cacheTrouble);
      return EXIT.cacheTrouble;
    }
    throw error;
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
    if (s.summary !== undefined && !retry) {
      // A summary that cannot be written is cache trouble, not the build's: a warning.
      try {
        await cache.summary({ file: s.summary });
      } catch (error) {
        say(
          `task: ${JSON.stringify(s.task)} cache warning: cannot write the summary ${s.summary}: ${(error as Error).message}`,
        );
      }
    }
    await cache.close();
  }
}

export { LOG_DIR };
