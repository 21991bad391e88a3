/**
 * The resolved settings of `task-cache run` and `task-cache explain` (flags > environment > config
 * file > default) and the key inputs they give core: both commands must compute the same key.
 */
import { resolve } from 'node:path';
import { ENV_TWINS, envFlag, envFormatVersion, envList, parseTools, type RunFlags } from './args.js';
import { loadConfig } from './config.js';
import { CliError } from './errors.js';

/** Where the CLI reads and writes (the process's own streams in the binary; tests pass their own). */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: Record<string, string | undefined>;
  cwd: string;
}

/** Quotes `arg` for a POSIX shell when it needs it (for the key's command line and messages). */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** The resolved settings of one run (or of `explain`, which computes the same key). */
export interface Settings {
  task: string;
  dir: string;
  command: { file: string; args: string[]; line: string };
  sources: string[];
  generates: string[];
  env: string[];
  tools: Record<string, string>;
  cache: string;
  lock: string;
  quietHit: boolean;
  json: boolean;
  strict: boolean;
  readOnly: boolean | 'auto';
  force: boolean;
  progress: boolean;
  explain: boolean;
  /** Where the run summary JSON goes (absolute), if anywhere. */
  summary?: string;
  /** Entry format version of saves, when set; unset: core's default. */
  formatVersion?: 1 | 2;
}

/** Merges the flags, their environment twins and the config file's task (`command` names the subcommand in errors). */
export async function settings(flags: RunFlags, io: CliIo, where = 'run'): Promise<Settings> {
  const e = io.env;
  const dir = resolve(io.cwd, flags.cwd ?? e[ENV_TWINS.cwd] ?? '.');
  const config = await loadConfig(dir);
  const configTask = flags.configTask;
  const ct = configTask === undefined ? undefined : config.tasks?.[configTask];
  if (configTask !== undefined && ct === undefined) {
    const known = Object.keys(config.tasks ?? {});
    throw new CliError(
      'CLI_ERR_USAGE',
      config.file
        ? `${where}: no task ${JSON.stringify(configTask)} in ${config.file} (tasks: ${known.join(', ') || 'none'})`
        : `${where}: no task ${JSON.stringify(configTask)}: no task-cache.json or package.json "taskCache" in ${dir}; put the command after '--'`,
    );
  }
  const task = flags.task ?? e[ENV_TWINS.task] ?? configTask;
  if (!task)
    throw new CliError('CLI_ERR_USAGE', `${where}: give the task name: --task NAME (or TASK_CACHE_TASK)`);
  const raw = flags.command ?? ct?.command;
  if (raw === undefined || raw.length === 0)
    throw new CliError(
      'CLI_ERR_USAGE',
      `${where}: no command for task ${JSON.stringify(task)}: put it after '--'`,
    );
  const command =
    typeof raw === 'string'
      ? { file: 'sh', args: ['-c', raw], line: raw }
      : { file: raw[0] as string, args: raw.slice(1), line: raw.map(shellQuote).join(' ') };
  const flag = (v: boolean | undefined, k: keyof typeof ENV_TWINS) =>
    v ?? envFlag(ENV_TWINS[k], e[ENV_TWINS[k]]) ?? false;
  const json = flag(flags.json, 'json');
  const summary = flags.summary ?? e[ENV_TWINS.summary];
  const version = flags.formatVersion ?? envFormatVersion(e) ?? config.formatVersion;
  return {
    task,
    dir,
    command,
    sources: flags.sources ?? envList(e[ENV_TWINS.sources]) ?? ct?.sources ?? [],
    generates: flags.generates ?? envList(e[ENV_TWINS.generates]) ?? ct?.generates ?? [],
    env: flags.env ?? envList(e[ENV_TWINS.env]) ?? ct?.env ?? [],
    tools: {
      ...ct?.tools,
      ...parseTools(flags.tool ?? envList(e[ENV_TWINS.tool]) ?? [], flags.tool ? '--tool' : ENV_TWINS.tool),
    },
    cache: flags.cache ?? e[ENV_TWINS.cache] ?? config.cache ?? '',
    lock: flags.lock ?? e[ENV_TWINS.lock] ?? config.lock ?? '',
    quietHit: flag(flags.quietHit, 'quiet-hit'),
    json,
    strict: flag(flags.strict, 'strict'),
    // Unset: core's readOnly 'auto' (fork pull/merge requests are read-only, docs/security.md).
    readOnly: flags.readOnly ?? envFlag(ENV_TWINS['read-only'], e[ENV_TWINS['read-only']]) ?? 'auto',
    force: flag(flags.force, 'force'),
    progress: !json && !flag(flags.noProgress, 'no-progress') && io.stderr.isTTY === true,
    explain: flag(flags.explain, 'explain'),
    ...(summary ? { summary: resolve(io.cwd, summary) } : {}),
    ...(version !== undefined ? { formatVersion: version } : {}),
  };
}

/** The key inputs of the run: what `cache.run()` gets, and `cache.explain()` for `task-cache explain`. */
export function keyOptions(s: Settings, io: CliIo) {
  return {
    task: s.task,
    dir: s.dir,
    // NOTE: the logs are outputs, never inputs: a `**` source would otherwise hash the last log.
    sources: s.sources.length > 0 ? [...s.sources, '!.task-cache/**'] : [],
    commands: [s.command.line],
    env: s.env,
    envValues: io.env,
    tools: s.tools,
  };
}
