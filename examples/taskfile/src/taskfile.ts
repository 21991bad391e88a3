/**
 * Reads a `Taskfile.yml` — the version 3 subset the guide uses: top-level `vars` and `env`, and
 * tasks with `desc`, `summary`, `deps`, `cmds`, `sources`, `generates`, `dir`, `vars`, `env` and
 * the `cache:` block (`enabled`, `url`, `lock`). Keys Task has but this runner does not implement
 * are refused by name rather than ignored, so a Taskfile never silently means something else here.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { TaskfileError } from './errors.js';

/** A variable's definition: a static value (rendered as a template) or a shell command. */
export type VarDefinition = { kind: 'static'; value: string } | { kind: 'sh'; sh: string };

/** One entry of a `vars:` or `env:` map, in file order (later ones may refer to earlier ones). */
export interface VarEntry {
  name: string;
  definition: VarDefinition;
  /** YAML path, for error messages. */
  where: string;
}

/** One item of `cmds:`: a shell command or a call of another task. */
export type CommandDefinition =
  | { kind: 'cmd'; cmd: string; where: string }
  | { kind: 'task'; task: string; where: string };

/** The `cache:` block of a task; `url`/`lock` are templates rendered once `.CHECKSUM` is known. */
export interface CacheDefinition {
  /** `true`/`false`, or a template rendering to `true`/`false`. @default true */
  enabled: boolean | string;
  /** Store URL template; empty means the embedded default store. @default '' */
  url: string;
  /** Lock URL template; empty means the local (one-machine) lock. @default '' */
  lock: string;
  where: string;
}

/** A task as declared. */
export interface TaskDefinition {
  name: string;
  desc?: string;
  deps: { task: string; where: string }[];
  cmds: CommandDefinition[];
  sources: string[];
  generates: string[];
  /** The task's directory (a template), relative to the Taskfile's directory. */
  dir?: string;
  vars: VarEntry[];
  env: VarEntry[];
  /** Absent: the task is not cached. */
  cache?: CacheDefinition;
  where: string;
}

/** A parsed Taskfile. */
export interface Taskfile {
  /** Absolute path of the file. */
  path: string;
  /** Its directory (`.ROOT_DIR`, `.TASKFILE_DIR`; where `.task/` lives). */
  dir: string;
  vars: VarEntry[];
  env: VarEntry[];
  tasks: Map<string, TaskDefinition>;
}

/** File names looked up, in order, as Task does. */
export const TASKFILE_NAMES = ['Taskfile.yml', 'taskfile.yml', 'Taskfile.yaml', 'taskfile.yaml'] as const;

const TASK_KEYS_UNSUPPORTED = [
  'status',
  'preconditions',
  'requires',
  'method',
  'run',
  'silent',
  'internal',
  'platforms',
  'label',
  'prompt',
  'ignore_error',
  'interactive',
  'aliases',
  'prefix',
  'set',
  'shopt',
  'watch',
  'deferred',
  'defer',
  'for',
  'dotenv',
  'output',
];
const TOP_KEYS_UNSUPPORTED = [
  'includes',
  'dotenv',
  'output',
  'method',
  'run',
  'silent',
  'set',
  'shopt',
  'interval',
];

/** Finds and parses the Taskfile in `dir`. */
export async function loadTaskfile(dir: string): Promise<Taskfile> {
  for (const name of TASKFILE_NAMES) {
    const path = resolve(dir, name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new TaskfileError('ERR_TASKFILE_NOT_FOUND', `cannot read ${path}`, { cause: error });
    }
    return parseTaskfile(text, path);
  }
  throw new TaskfileError('ERR_TASKFILE_NOT_FOUND', `no Taskfile.yml found in ${resolve(dir)}`);
}

/** Parses Taskfile text; `path` names the file in errors and sets {@link Taskfile.dir}. */
export function parseTaskfile(text: string, path = join(process.cwd(), 'Taskfile.yml')): Taskfile {
  const file = path.split(/[\\/]/).pop() ?? 'Taskfile.yml';
  const invalid = (where: string, message: string, cause?: unknown) =>
    new TaskfileError('ERR_TASKFILE_INVALID', message, { where: `${file}: ${where}`, cause });

  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new TaskfileError('ERR_TASKFILE_INVALID', `invalid YAML: ${first.message}`, {
      where: file,
      cause: first,
    });
  }
  const root: unknown = doc.toJS();
  if (!isMap(root)) throw invalid('(top level)', 'expected a mapping with "version" and "tasks"');

  for (const key of Object.keys(root)) {
    if (TOP_KEYS_UNSUPPORTED.includes(key)) {
      throw invalid(key, `"${key}" is not supported by this runner (supported: version, vars, env, tasks)`);
    }
    if (!['version', 'vars', 'env', 'tasks'].includes(key)) {
      throw invalid(key, `unknown key "${key}" (supported: version, vars, env, tasks)`);
    }
  }
  const version = root.version;
  if (version === undefined) throw invalid('version', 'missing "version" (this runner reads version 3)');
  if (!/^3(\.\d+)*$/.test(String(version))) {
    throw invalid(
      'version',
      `version ${JSON.stringify(version)} is not supported (this runner reads version 3)`,
    );
  }
  if (!isMap(root.tasks)) throw invalid('tasks', 'expected a mapping of task names to tasks');

  const tasks = new Map<string, TaskDefinition>();
  for (const [name, raw] of Object.entries(root.tasks)) {
    tasks.set(name, parseTask(name, raw, invalid));
  }
  return {
    path,
    dir: dirname(path),
    vars: parseVars(root.vars, 'vars', invalid),
    env: parseVars(root.env, 'env', invalid),
    tasks,
  };
}

type Invalid = (where: string, message: string) => TaskfileError;

function parseTask(name: string, raw: unknown, invalid: Invalid): TaskDefinition {
  const where = `tasks.${name}`;
  // Task's shorthands: a task may be one command or a list of commands.
  if (typeof raw === 'string' || Array.isArray(raw)) raw = { cmds: typeof raw === 'string' ? [raw] : raw };
  if (raw === null || raw === undefined) raw = {};
  if (!isMap(raw)) throw invalid(where, 'expected a mapping, a command or a list of commands');

  const supported = 'desc, summary, deps, cmds, sources, generates, dir, vars, env, cache';
  for (const key of Object.keys(raw)) {
    if (TASK_KEYS_UNSUPPORTED.includes(key)) {
      throw invalid(`${where}.${key}`, `"${key}" is not supported by this runner (supported: ${supported})`);
    }
    if (!supported.split(', ').includes(key)) {
      throw invalid(`${where}.${key}`, `unknown key "${key}" (supported: ${supported})`);
    }
  }
  const task: TaskDefinition = {
    name,
    deps: parseList(raw.deps, `${where}.deps`, invalid).map((item, i) => {
      const at = `${where}.deps[${i}]`;
      if (typeof item === 'string') return { task: item, where: at };
      if (isMap(item) && typeof item.task === 'string' && Object.keys(item).length === 1) {
        return { task: item.task, where: at };
      }
      throw invalid(at, 'expected a task name or { task: NAME } (vars in calls are not supported)');
    }),
    cmds: parseList(raw.cmds, `${where}.cmds`, invalid).map((item, i): CommandDefinition => {
      const at = `${where}.cmds[${i}]`;
      if (typeof item === 'string') return { kind: 'cmd', cmd: item, where: at };
      if (isMap(item) && Object.keys(item).length === 1 && typeof item.cmd === 'string') {
        return { kind: 'cmd', cmd: item.cmd, where: at };
      }
      if (isMap(item) && Object.keys(item).length === 1 && typeof item.task === 'string') {
        return { kind: 'task', task: item.task, where: at };
      }
      throw invalid(at, 'expected a command string, { cmd: "…" } or { task: NAME }');
    }),
    sources: parseStrings(raw.sources, `${where}.sources`, invalid),
    generates: parseStrings(raw.generates, `${where}.generates`, invalid),
    vars: parseVars(raw.vars, `${where}.vars`, invalid),
    env: parseVars(raw.env, `${where}.env`, invalid),
    where,
  };
  if (raw.desc !== undefined) task.desc = String(raw.desc);
  if (raw.dir !== undefined) {
    if (typeof raw.dir !== 'string') throw invalid(`${where}.dir`, 'expected a string');
    task.dir = raw.dir;
  }
  if (raw.cache !== undefined) task.cache = parseCache(raw.cache, `${where}.cache`, invalid);
  return task;
}

function parseCache(raw: unknown, where: string, invalid: Invalid): CacheDefinition {
  if (!isMap(raw)) throw invalid(where, 'expected a mapping with enabled, url and lock');
  for (const key of Object.keys(raw)) {
    if (!['enabled', 'url', 'lock'].includes(key)) {
      throw invalid(`${where}.${key}`, `unknown key "${key}" (supported: enabled, url, lock)`);
    }
  }
  const enabled = raw.enabled ?? true;
  if (typeof enabled !== 'boolean' && typeof enabled !== 'string') {
    throw invalid(`${where}.enabled`, 'expected true, false or a template rendering to one of them');
  }
  const str = (key: 'url' | 'lock'): string => {
    const value = raw[key] ?? '';
    if (typeof value !== 'string') throw invalid(`${where}.${key}`, 'expected a string');
    return value;
  };
  return { enabled, url: str('url'), lock: str('lock'), where };
}

function parseVars(raw: unknown, where: string, invalid: Invalid): VarEntry[] {
  if (raw === undefined || raw === null) return [];
  if (!isMap(raw)) throw invalid(where, 'expected a mapping of names to values');
  return Object.entries(raw).map(([name, value]) => {
    const at = `${where}.${name}`;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw invalid(at, `"${name}" is not a valid variable name`);
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      return { name, definition: { kind: 'static', value: String(value) }, where: at };
    }
    if (isMap(value) && Object.keys(value).length === 1 && typeof value.sh === 'string') {
      return { name, definition: { kind: 'sh', sh: value.sh }, where: at };
    }
    throw invalid(at, 'expected a string, a number, a boolean or { sh: "command" }');
  });
}

function parseList(raw: unknown, where: string, invalid: Invalid): unknown[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid(where, 'expected a list');
  return raw;
}

function parseStrings(raw: unknown, where: string, invalid: Invalid): string[] {
  return parseList(raw, where, invalid).map((item, i) => {
    if (typeof item !== 'string') throw invalid(`${where}[${i}]`, 'expected a string (a glob)');
    return item;
  });
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
