/**
 * The config file: `task-cache.json` in the directory of the run (`--cwd`, else the current one), or
 * the `"taskCache"` field of its package.json. It names tasks so that `task-cache run build` needs no
 * flags. The store and lock URLs may be set here too, but their passwords belong in the environment
 * (`TASK_CACHE_URL`, `TASK_CACHE_LOCK_URL`, `TASK_CACHE_OCI_*`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError } from './errors.js';

/** One task of the config file. */
export interface ConfigTask {
  /** The command: an argv array (run as is), or a string (run by `sh -c`). */
  command?: string | string[];
  /** Globs of the inputs. @default [] */
  sources?: string[];
  /** Globs of the outputs. @default [] */
  generates?: string[];
  /** Names of environment variables whose values enter the key. @default [] */
  env?: string[];
  /** Tool versions that enter the key (`{ "node": "20.18.1" }`). @default {} */
  tools?: Record<string, string>;
}

/** The config file's content. */
export interface CliConfig {
  /** Store URL. @default '' (the embedded default store) */
  cache?: string;
  /** Lock URL. @default '' (the local lock) */
  lock?: string;
  /**
   * Entry format version of saves (`--format-version`): `2` packs the chunks into 16–64 MiB blobs
   * (docs/format.md §11); restores read both. @default core's default (1)
   */
  formatVersion?: 1 | 2;
  /** Tasks by name. @default {} */
  tasks?: Record<string, ConfigTask>;
  /** Where it was read from (for messages). */
  file?: string;
}

const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

function check(config: unknown, file: string): CliConfig {
  const bad = (field: string, expected: string): never => {
    throw new CliError('CLI_ERR_CONFIG_FILE', `${file}: ${field} must be ${expected}`);
  };
  if (typeof config !== 'object' || config === null || Array.isArray(config)) bad('the config', 'an object');
  const c = config as Record<string, unknown>;
  for (const k of Object.keys(c))
    if (!['cache', 'lock', 'formatVersion', 'tasks', '$schema'].includes(k))
      bad(k, 'one of cache, lock, formatVersion, tasks (unknown field)');
  if (c.cache !== undefined && typeof c.cache !== 'string') bad('cache', 'a store URL string');
  if (c.lock !== undefined && typeof c.lock !== 'string') bad('lock', 'a lock URL string');
  if (c.formatVersion !== undefined && c.formatVersion !== 1 && c.formatVersion !== 2)
    bad('formatVersion', `1 or 2, got ${JSON.stringify(c.formatVersion)}`);
  if (c.tasks !== undefined) {
    if (typeof c.tasks !== 'object' || c.tasks === null || Array.isArray(c.tasks)) bad('tasks', 'an object');
    for (const [name, t] of Object.entries(c.tasks as Record<string, unknown>)) {
      const at = `tasks.${name}`;
      if (typeof t !== 'object' || t === null || Array.isArray(t)) bad(at, 'an object');
      const task = t as Record<string, unknown>;
      for (const k of Object.keys(task))
        if (!['command', 'sources', 'generates', 'env', 'tools'].includes(k))
          bad(`${at}.${k}`, 'one of command, sources, generates, env, tools (unknown field)');
      if (task.command !== undefined && typeof task.command !== 'string' && !strings(task.command))
        bad(`${at}.command`, 'a string or an array of strings');
      for (const k of ['sources', 'generates', 'env'])
        if (task[k] !== undefined && !strings(task[k])) bad(`${at}.${k}`, 'an array of strings');
      if (
        task.tools !== undefined &&
        (typeof task.tools !== 'object' ||
          task.tools === null ||
          Object.values(task.tools).some((v) => typeof v !== 'string'))
      )
        bad(`${at}.tools`, 'an object of strings');
    }
  }
  return { ...(c as CliConfig), file };
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError('CLI_ERR_CONFIG_FILE', `${path}: cannot read it (${(error as Error).message})`, {
      cause: error,
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliError('CLI_ERR_CONFIG_FILE', `${path}: not valid JSON (${(error as Error).message})`, {
      cause: error,
    });
  }
}

/** Reads the config of `dir`: `task-cache.json`, else package.json's `"taskCache"`, else `{}`. */
export async function loadConfig(dir: string): Promise<CliConfig> {
  const own = join(dir, 'task-cache.json');
  const config = await readJson(own);
  if (config !== undefined) return check(config, own);
  const pkgFile = join(dir, 'package.json');
  const pkg = await readJson(pkgFile);
  if (pkg && typeof pkg === 'object' && 'taskCache' in pkg)
    return check((pkg as { taskCache: unknown }).taskCache, `${pkgFile} ("taskCache")`);
  return {};
}
