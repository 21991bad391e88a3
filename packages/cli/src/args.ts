/**
 * The options of `task-cache run`: flags, their environment twins and the config file's task,
 * merged in that order of precedence (flag > environment > config file > default).
 */
import { parseArgs } from 'node:util';
import { CliError } from './errors.js';

/** The environment twin of each option of `run` (see docs/cli.md). */
export const ENV_TWINS = {
  task: 'TASK_CACHE_TASK',
  sources: 'TASK_CACHE_SOURCES',
  generates: 'TASK_CACHE_GENERATES',
  env: 'TASK_CACHE_ENV',
  tool: 'TASK_CACHE_TOOLS',
  cwd: 'TASK_CACHE_CWD',
  cache: 'TASK_CACHE_URL',
  lock: 'TASK_CACHE_LOCK_URL',
  'quiet-hit': 'TASK_CACHE_QUIET_HIT',
  json: 'TASK_CACHE_JSON',
  strict: 'TASK_CACHE_STRICT',
  'read-only': 'TASK_CACHE_READ_ONLY',
  force: 'TASK_CACHE_FORCE',
  'no-progress': 'TASK_CACHE_NO_PROGRESS',
  explain: 'TASK_CACHE_EXPLAIN',
  summary: 'TASK_CACHE_SUMMARY',
  'format-version': 'TASK_CACHE_FORMAT_VERSION',
} as const;

const RUN_OPTIONS = {
  task: { type: 'string', short: 't' },
  sources: { type: 'string', multiple: true },
  generates: { type: 'string', multiple: true },
  env: { type: 'string', multiple: true },
  tool: { type: 'string', multiple: true },
  cwd: { type: 'string' },
  cache: { type: 'string' },
  lock: { type: 'string' },
  'quiet-hit': { type: 'boolean' },
  json: { type: 'boolean' },
  strict: { type: 'boolean' },
  'read-only': { type: 'boolean' },
  force: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  explain: { type: 'boolean' },
  summary: { type: 'string' },
  'format-version': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** What the command line of `run` says, before the environment and the config file fill the gaps. */
export interface RunFlags {
  /** A task of the config file named as the first positional (`task-cache run build`). */
  configTask?: string;
  /** The command after `--`, if any. */
  command?: string[];
  task?: string;
  sources?: string[];
  generates?: string[];
  env?: string[];
  tool?: string[];
  cwd?: string;
  cache?: string;
  lock?: string;
  quietHit?: boolean;
  json?: boolean;
  strict?: boolean;
  readOnly?: boolean;
  force?: boolean;
  noProgress?: boolean;
  explain?: boolean;
  summary?: string;
  /** Entry format version of saves (core's `formatVersion`). */
  formatVersion?: 1 | 2;
  help?: boolean;
}

/** Splits `argv` (after `run`, or `explain`) at the first `--` and parses the flags before it. */
export function parseRunArgs(argv: readonly string[], where = 'run'): RunFlags {
  const dash = argv.indexOf('--');
  const head = dash === -1 ? [...argv] : argv.slice(0, dash);
  const command = dash === -1 ? undefined : argv.slice(dash + 1);
  let parsed: ReturnType<typeof parseArgs<{ options: typeof RUN_OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: head, options: RUN_OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError('CLI_ERR_USAGE', `${where}: ${(error as Error).message}`, { cause: error });
  }
  const { values: v, positionals } = parsed;
  if (positionals.length > 1)
    throw new CliError(
      'CLI_ERR_USAGE',
      `${where}: expected at most one task name before '--', got ${positionals.length} (${positionals.join(' ')}); put the command after '--'`,
    );
  if (command !== undefined && command.length === 0)
    throw new CliError('CLI_ERR_USAGE', `${where}: nothing after '--': give the command to run`);
  const flags: RunFlags = {};
  const set = <K extends keyof RunFlags>(k: K, value: RunFlags[K] | undefined) => {
    if (value !== undefined) flags[k] = value;
  };
  set('configTask', positionals[0]);
  set('command', command);
  set('task', v.task);
  set('sources', v.sources);
  set('generates', v.generates);
  set('env', v.env);
  set('tool', v.tool);
  set('cwd', v.cwd);
  set('cache', v.cache);
  set('lock', v.lock);
  set('quietHit', v['quiet-hit']);
  set('json', v.json);
  set('strict', v.strict);
  set('readOnly', v['read-only']);
  set('force', v.force);
  set('noProgress', v['no-progress']);
  set('explain', v.explain);
  set('summary', v.summary);
  if (v['format-version'] !== undefined)
    set('formatVersion', formatVersion(`${where}: --format-version`, v['format-version']));
  set('help', v.help);
  return flags;
}

/** A list option's environment twin: whitespace-separated (newlines included). */
export function envList(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  return value.trim().split(/\s+/);
}

/** A boolean option's environment twin: `1`, `true`, `yes` (any case) are on; `0`, `false`, `no`, empty are off. */
export function envFlag(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '' || v === '0' || v === 'false' || v === 'no') return false;
  throw new CliError(
    'CLI_ERR_USAGE',
    `${name}: expected 1/true/yes or 0/false/no, got ${JSON.stringify(value)}`,
  );
}

/**
 * The entry format version of `--format-version` or its twin: `1` or `2` (docs/format.md §11).
 * `name` says where the value came from, for the message.
 */
export function formatVersion(name: string, value: string): 1 | 2 {
  const v = value.trim();
  if (v === '1' || v === '2') return Number(v) as 1 | 2;
  throw new CliError('CLI_ERR_USAGE', `${name}: expected 1 or 2, got ${JSON.stringify(value)}`);
}

/**
 * The entry format version of the environment twin `TASK_CACHE_FORMAT_VERSION`, or `undefined`
 * when it is unset or empty (a CI variable that expands to nothing, as for the list twins).
 */
export function envFormatVersion(env: Record<string, string | undefined>): 1 | 2 | undefined {
  const name = ENV_TWINS['format-version'];
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : formatVersion(name, value);
}

/** `--tool NAME=VERSION` values as the `tools` record of the key. */
export function parseTools(values: readonly string[], where: string): Record<string, string> {
  const tools: Record<string, string> = {};
  for (const t of values) {
    const eq = t.indexOf('=');
    if (eq <= 0)
      throw new CliError('CLI_ERR_USAGE', `${where}: expected NAME=VERSION, got ${JSON.stringify(t)}`);
    tools[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return tools;
}
