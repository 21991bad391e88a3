/**
 * Runs tasks of a Taskfile, caching those with a `cache:` block through `@task-cache/core`.
 *
 * Per task: deps (in parallel, as Task does) → render vars/env/dir/globs → checksum of the
 * sources (`.CHECKSUM`) → `.task/` fingerprint (up to date? done) → render the `cache:` block →
 * `cache.run(…, build)` → write the fingerprint. Cache trouble is a warning line, never a failure;
 * the exit code is the failing command's, or 0.
 */
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { type CacheEvent, checksum, createCache, formatEvent, taskTag } from '@task-cache/core';
import { CommandFailedError, TaskfileError } from './errors.js';
import { isUpToDate, writeFingerprint } from './fingerprint.js';
import { createProgressBar, type ProgressStream } from './progress.js';
import { loadTaskfile, type TaskDefinition, type Taskfile, type VarEntry } from './taskfile.js';
import { renderTemplate, type TemplateFunction } from './template.js';

/** Options of {@link runTasks}. */
export interface RunTasksOptions {
  /** Directory holding the Taskfile. @default process.cwd() */
  dir?: string;
  /** Tasks to run, in order. @default ['default'] */
  tasks?: readonly string[];
  /** Run even when up to date; cached tasks rebuild and overwrite their entry. @default false */
  force?: boolean;
  /** Print cache keys, lookups, hits/misses and timings. @default false */
  verbose?: boolean;
  /** Environment for templates, commands and the cache's credentials. @default process.env */
  env?: Record<string, string | undefined>;
  /** Where commands' standard output goes. @default process.stdout */
  stdout?: Writable;
  /** Where `task: …` lines, commands' standard error and the progress bar go. @default process.stderr */
  stderr?: Writable & ProgressStream;
  signal?: AbortSignal;
}

type Data = Record<string, string>;

/** Runs `options.tasks` and resolves to the process exit code (never rejects for a failing command). */
export async function runTasks(options: RunTasksOptions = {}): Promise<number> {
  const stderr = options.stderr ?? process.stderr;
  const say = (line: string) => stderr.write(`${line}\n`);
  try {
    const taskfile = await loadTaskfile(resolve(options.dir ?? process.cwd()));
    const runner = new Runner(taskfile, options, say);
    for (const name of options.tasks?.length ? options.tasks : ['default']) {
      await runner.run(name, []);
    }
    return 0;
  } catch (error) {
    if (error instanceof CommandFailedError) {
      say(
        `task: Failed to run task ${JSON.stringify(error.task)}: ${error.message.replace(/^task "[^"]*" failed: /, '')}`,
      );
      return error.exitCode;
    }
    if (error instanceof TaskfileError) {
      say(`task: ${error.message}`);
      return 1;
    }
    if ((error as Error).name === 'AbortError' || options.signal?.aborted) {
      say('task: interrupted');
      return 130;
    }
    // Anything else (an unreadable source file, a full disk): one line, not a stack trace.
    say(`task: ${(error as Error).message ?? String(error)}`);
    return 1;
  }
}

class Runner {
  readonly #taskfile: Taskfile;
  readonly #options: RunTasksOptions;
  readonly #say: (line: string) => void;
  readonly #env: Record<string, string | undefined>;
  readonly #functions: Record<string, TemplateFunction>;
  #globals?: Promise<{ data: Data; env: Data }>;

  constructor(taskfile: Taskfile, options: RunTasksOptions, say: (line: string) => void) {
    this.#taskfile = taskfile;
    this.#options = options;
    this.#say = say;
    this.#env = options.env ?? process.env;
    this.#functions = {
      urlsafe: (...args) => {
        if (args.length !== 1 || typeof args[0] !== 'string')
          throw new Error('urlsafe needs 1 string argument');
        // NOTE: go-task's urlsafe does not shorten; ours does, past 63 characters (a readable
        // prefix and a hash of the name, core's `taskTag`), so that the guide's
        // `{{urlsafe .TASK}}-{{.CHECKSUM}}` stays a valid tag for any task name (issue 16).
        return taskTag(args[0]);
      },
    };
  }

  /** Template data = OS environment < Taskfile vars < Taskfile env (< task vars < task env, per task). */
  #globalScope(): Promise<{ data: Data; env: Data }> {
    this.#globals ??= (async () => {
      const data: Data = {};
      for (const [k, v] of Object.entries(this.#env)) if (v !== undefined) data[k] = v;
      data.ROOT_DIR = this.#taskfile.dir;
      data.TASKFILE_DIR = this.#taskfile.dir;
      data.USER_WORKING_DIR = process.cwd();
      const env: Data = {};
      // Vars first: `env:` values may use them (as in Task).
      await this.#resolveVars(this.#taskfile.vars, data, undefined, this.#taskfile.dir);
      await this.#resolveVars(this.#taskfile.env, data, env, this.#taskfile.dir);
      return { data, env };
    })();
    return this.#globals;
  }

  async #resolveVars(entries: VarEntry[], data: Data, env: Data | undefined, cwd: string): Promise<void> {
    for (const entry of entries) {
      const where = `${this.#file}: ${entry.where}`;
      let value: string;
      if (entry.definition.kind === 'static') {
        value = this.#render(entry.definition.value, data, where);
      } else {
        const command = this.#render(entry.definition.sh, data, where);
        const result = spawnSync('sh', ['-c', command], {
          cwd,
          env: { ...this.#env, ...env },
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        if (result.status !== 0) {
          throw new TaskfileError(
            'ERR_TASKFILE_INVALID',
            `command ${JSON.stringify(command)} failed (exit status ${result.status})`,
            {
              where,
              cause: result.error,
            },
          );
        }
        value = result.stdout.replace(/\r?\n$/, '');
      }
      data[entry.name] = value;
      if (env) env[entry.name] = value;
    }
  }

  get #file(): string {
    return this.#taskfile.path.split(/[\\/]/).pop() ?? 'Taskfile.yml';
  }

  #render(text: string, data: Data, where: string): string {
    return renderTemplate(text, data, { functions: this.#functions, where });
  }

  async run(name: string, stack: readonly string[]): Promise<void> {
    const task = this.#taskfile.tasks.get(name);
    if (!task) {
      const known = [...this.#taskfile.tasks.keys()].join(', ');
      throw new TaskfileError(
        'ERR_TASK_NOT_FOUND',
        `Task ${JSON.stringify(name)} does not exist (tasks: ${known || 'none'})`,
      );
    }
    if (stack.includes(name)) {
      throw new TaskfileError('ERR_TASK_CYCLE', `task cycle: ${[...stack, name].join(' → ')}`);
    }
    const callers = [...stack, name];
    // Deps run concurrently, as Task runs them; the first failure wins.
    await Promise.all(task.deps.map((dep) => this.run(dep.task, callers)));
    await this.#runTask(task, callers);
  }

  async #runTask(task: TaskDefinition, callers: readonly string[]): Promise<void> {
    const file = this.#file;
    const globals = await this.#globalScope();
    const data: Data = { ...globals.data, TASK: task.name };
    const env: Data = { ...globals.env };
    await this.#resolveVars(task.vars, data, undefined, this.#taskfile.dir);
    await this.#resolveVars(task.env, data, env, this.#taskfile.dir);
    const at = (where: string) => `${file}: ${where}`;
    const dir = resolve(
      this.#taskfile.dir,
      task.dir ? this.#render(task.dir, data, at(`${task.where}.dir`)) : '.',
    );
    const sources = task.sources.map((s, i) => this.#render(s, data, at(`${task.where}.sources[${i}]`)));
    const generates = task.generates.map((g, i) =>
      this.#render(g, data, at(`${task.where}.generates[${i}]`)),
    );

    const started = Date.now();
    const sum =
      sources.length > 0 || task.cache ? await checksum({ dir, sources, signal: this.#options.signal }) : '';
    data.CHECKSUM = sum;
    if (this.#options.verbose && sum) {
      this.#say(`task: ${JSON.stringify(task.name)} checksum ${sum} (${Date.now() - started} ms)`);
    }

    if (
      !this.#options.force &&
      (await isUpToDate({
        rootDir: this.#taskfile.dir,
        dir,
        task: task.name,
        checksum: sum,
        sources,
        generates,
      }))
    ) {
      this.#say(`task: Task ${JSON.stringify(task.name)} is up to date`);
      return;
    }

    const build = async () => {
      for (const cmd of task.cmds) {
        if (cmd.kind === 'task') {
          await this.run(this.#render(cmd.task, data, at(cmd.where)), callers);
          continue;
        }
        const command = this.#render(cmd.cmd, data, at(cmd.where));
        this.#say(`task: [${task.name}] ${command}`);
        await this.#exec(task.name, command, dir, { ...this.#env, ...env });
      }
    };

    if (task.cache) await this.#runCached(task, { dir, sources, generates, data, build });
    else await build();

    if (sources.length > 0) await writeFingerprint(this.#taskfile.dir, task.name, sum);
  }

  async #runCached(
    task: TaskDefinition,
    run: { dir: string; sources: string[]; generates: string[]; data: Data; build: () => Promise<void> },
  ): Promise<void> {
    const cacheDef = task.cache!;
    const where = `${this.#file}: ${cacheDef.where}`;
    let enabled: boolean;
    if (typeof cacheDef.enabled === 'boolean') {
      enabled = cacheDef.enabled;
    } else {
      const rendered = this.#render(cacheDef.enabled, run.data, `${where}.enabled`).trim();
      if (rendered !== 'true' && rendered !== 'false') {
        throw new TaskfileError(
          'ERR_TASKFILE_INVALID',
          `rendered to ${JSON.stringify(rendered)}, expected "true" or "false"`,
          {
            where: `${where}.enabled`,
          },
        );
      }
      enabled = rendered === 'true';
    }
    if (!enabled) {
      if (this.#options.verbose) this.#say(`task: ${JSON.stringify(task.name)} cache disabled`);
      await run.build();
      return;
    }
    const url = this.#render(cacheDef.url, run.data, `${where}.url`);
    const lock = this.#render(cacheDef.lock, run.data, `${where}.lock`);
    const bar = createProgressBar(this.#options.stderr ?? process.stderr);
    const verbose = this.#options.verbose;
    let lockLinePrinted = false;
    const onEvent = (event: CacheEvent) => {
      if (event.type === 'progress') {
        bar.update(event);
        return;
      }
      // NOTE: core reports an unusable lock twice (a `lock-unavailable` event and a warning with
      // the same message); one line is enough.
      if (event.type === 'lock-unavailable') lockLinePrinted = true;
      else if (event.type === 'warning' && lockLinePrinted && event.code.startsWith('LOCK_')) return;
      const line = formatEvent(event) ?? (verbose ? verboseLine(event) : undefined);
      if (line === undefined) return;
      bar.clear();
      this.#say(line);
    };

    let buildStarted = false;
    let buildFailed: unknown;
    const build = async () => {
      buildStarted = true;
      try {
        await run.build();
      } catch (error) {
        buildFailed = error;
        throw error;
      }
    };
    let cache: ReturnType<typeof createCache>;
    try {
      cache = createCache({ store: url, lock, env: this.#env, onEvent, force: this.#options.force ?? false });
    } catch (error) {
      // NOTE: a bad cache URL must not stop the build: warn (the message is redacted by core) and build.
      this.#say(`task: ${JSON.stringify(task.name)} cache warning: ${(error as Error).message}`);
      await run.build();
      return;
    }
    try {
      const result = await cache.run(
        {
          task: task.name,
          dir: run.dir,
          sources: run.sources,
          generates: run.generates,
          signal: this.#options.signal,
        },
        build,
      );
      bar.clear();
      if (verbose) {
        const s = result.stats;
        this.#say(
          `task: ${JSON.stringify(task.name)} ${result.status}${result.reason ? ` (${result.reason})` : ''} key=${result.key}` +
            ` lookup=${ms(s.lookupMs)} lock=${ms(s.lockWaitMs)} build=${ms(s.buildMs)} save=${ms(s.saveMs)}` +
            ` restore=${ms(s.restoreMs)} total=${ms(s.totalMs)}`,
        );
      }
    } catch (error) {
      bar.clear();
      if (buildFailed !== undefined || error instanceof CommandFailedError) throw buildFailed ?? error;
      if ((error as Error).name === 'AbortError') throw error;
      this.#say(`task: ${JSON.stringify(task.name)} cache warning: ${(error as Error).message}`);
      if (!buildStarted) await run.build();
    } finally {
      await cache.close?.().catch(() => {});
    }
  }

  #exec(task: string, command: string, cwd: string, env: Record<string, string | undefined>): Promise<void> {
    const stdout = this.#options.stdout ?? process.stdout;
    const stderr = this.#options.stderr ?? process.stderr;
    const inherit = stdout === process.stdout && stderr === process.stderr;
    return new Promise((resolvePromise, reject) => {
      const child = spawn('sh', ['-c', command], {
        cwd,
        env,
        stdio: inherit ? 'inherit' : ['inherit', 'pipe', 'pipe'],
        signal: this.#options.signal,
        killSignal: 'SIGTERM',
      });
      if (!inherit) {
        child.stdout?.on('data', (chunk: Buffer) => stdout.write(chunk));
        child.stderr?.on('data', (chunk: Buffer) => stderr.write(chunk));
      }
      child.on('error', (error) => {
        if (error.name === 'AbortError') reject(error);
        else reject(new CommandFailedError(task, 127, { cause: error }));
      });
      child.on('close', (code, signal) => {
        if (this.#options.signal?.aborted) return reject(this.#options.signal.reason ?? new Error('aborted'));
        if (code === 0) return resolvePromise();
        const signo = signal ? (osSignals[signal] ?? 0) : 0;
        reject(new CommandFailedError(task, code ?? 128 + signo, { signal }));
      });
    });
  }
}

const ms = (value: number) => `${Math.round(value)}ms`;

const osSignals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

function verboseLine(event: CacheEvent): string | undefined {
  const task = JSON.stringify(event.task);
  switch (event.type) {
    case 'lookup':
      return `task: ${task} cache lookup ${event.key} in ${event.store}`;
    case 'hit':
      return `task: ${task} cache hit ${event.key}`;
    case 'miss':
      return `task: ${task} cache miss ${event.key}`;
    case 'lock-acquired':
      return `task: ${task} cache lock acquired`;
    default:
      return undefined;
  }
}
