/**
 * `task-cache explain`, `task-cache stats` and `task-cache prune`: thin front-ends over core's
 * `cache.explain()`, `cache.stats()` and `cache.prune()`.
 */
import { parseArgs } from 'node:util';
import {
  createCache,
  describeChange,
  describeExplanation,
  type Explanation,
  formatBytes,
} from '@task-cache/core';
import { ENV_TWINS, parseRunArgs } from './args.js';
import { CliError, EXIT } from './errors.js';
import { type CliIo, keyOptions, settings } from './settings.js';

export const EXPLAIN_USAGE = `Usage: task-cache explain [options] TASK
       task-cache explain [options] --task NAME [-- COMMAND [ARGS...]]

Prints why TASK's key misses (or would): its inputs against the task's newest previous entry —
files added, removed and changed, env variables, tools, the command line — or that there is no
previous entry. TASK names a task of task-cache.json (or package.json "taskCache"); otherwise give
the same flags and command as to \`task-cache run\` (the command line is part of the key). Nothing
is run, restored or saved. --json prints core's Explanation object.
`;

export const STATS_USAGE = `Usage: task-cache stats [--json]

Cumulative counters per task and store of every run logged in the state dir (TASK_CACHE_DIR, else
the default cache dir), by any process: runs, hits, misses, time saved, build time, bytes pushed
and pulled, chunks deduplicated.
`;

export const PRUNE_USAGE = `Usage: task-cache prune [--cache URL] [--dry-run] [--json]

Bounds the local store now (TASK_CACHE_MAX_SIZE, TASK_CACHE_MAX_AGE: least-recently-used entries
first, then the blobs nothing references) and prunes the state dir. A registry, Redis or memory
store is left alone. --dry-run reports what would go and removes nothing.
`;

/** `task-cache explain`. */
export async function explainCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const flags = parseRunArgs(argv, 'explain');
  if (flags.help) {
    io.stdout.write(EXPLAIN_USAGE);
    return EXIT.ok;
  }
  const s = await settings(flags, io, 'explain');
  const cache = createCache({
    store: s.cache,
    lock: s.lock,
    env: io.env,
    onEvent: (event) => {
      if (event.type === 'warning') io.stderr.write(`task-cache: explain: warning: ${event.message}\n`);
    },
  });
  let e: Explanation;
  try {
    e = await cache.explain(keyOptions(s, io));
  } finally {
    await cache.close();
  }
  if (s.json) {
    io.stdout.write(`${JSON.stringify(e)}\n`);
    return EXIT.ok;
  }
  const lines = [`task:      ${e.task}`, `key:       ${e.key}`];
  if (e.previous.status === 'found') {
    lines.push(`previous:  ${e.previous.key} (${e.previous.created})`);
    if (e.previous.key === e.key) lines.push("the key is the previous entry's: a hit");
    else if (e.changes.length === 0) lines.push(describeExplanation(e));
    else lines.push('changed:', ...e.changes.map((c) => `  ${describeChange(c)}`));
  } else lines.push(`previous:  ${describeExplanation(e)}`);
  io.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

const OPTIONS = {
  cache: { type: 'string' },
  json: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse(argv: readonly string[], command: string, allowed: readonly string[]) {
  const parse = () => parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (error) {
    throw new CliError('CLI_ERR_USAGE', `${command}: ${(error as Error).message}`, { cause: error });
  }
  if (parsed.positionals.length > 0)
    throw new CliError('CLI_ERR_USAGE', `${command}: unexpected ${parsed.positionals.join(' ')}`);
  for (const name of Object.keys(parsed.values))
    if (!allowed.includes(name)) throw new CliError('CLI_ERR_USAGE', `${command}: unknown option --${name}`);
  return parsed.values;
}

const pad = (cells: readonly string[][]): string => {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
};

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** `task-cache stats`. */
export async function statsCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const values = parse(argv, 'stats', ['json', 'help']);
  if (values.help) {
    io.stdout.write(STATS_USAGE);
    return EXIT.ok;
  }
  // The store is never opened by stats(): the counters are the state dir's.
  const cache = createCache({ env: io.env });
  try {
    const counters = await cache.stats();
    if (values.json) {
      io.stdout.write(`${JSON.stringify(counters)}\n`);
      return EXIT.ok;
    }
    if (counters.length === 0) {
      io.stdout.write('no runs recorded yet\n');
      return EXIT.ok;
    }
    const rows = [
      ['task', 'store', 'runs', 'hits', 'misses', 'saved', 'built', 'pushed', 'pulled', 'dedup'],
      ...counters.map((c) => [
        c.task,
        c.store || '(none)',
        String(c.runs),
        String(c.hits),
        String(c.misses),
        seconds(c.timeSavedMs),
        seconds(c.buildMs),
        formatBytes(c.bytesPushed),
        formatBytes(c.bytesPulled),
        String(c.chunksDeduplicated),
      ]),
    ];
    io.stdout.write(`${pad(rows)}\n`);
    return EXIT.ok;
  } finally {
    await cache.close();
  }
}

/** `task-cache prune`. */
export async function pruneCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const values = parse(argv, 'prune', ['cache', 'json', 'dry-run', 'help']);
  if (values.help) {
    io.stdout.write(PRUNE_USAGE);
    return EXIT.ok;
  }
  const cache = createCache({ store: values.cache ?? io.env[ENV_TWINS.cache] ?? '', env: io.env });
  try {
    const r = await cache.prune({ dryRun: values['dry-run'] === true });
    if (values.json) {
      io.stdout.write(`${JSON.stringify(r)}\n`);
      return EXIT.ok;
    }
    const verb = r.dryRun ? 'would remove' : 'removed';
    const lines = r.supported
      ? [
          `${r.store}: ${verb} ${r.removedTags.length} entr${r.removedTags.length === 1 ? 'y' : 'ies'}, ${r.removedBlobs} blobs (${formatBytes(r.freedBytes)}); kept ${r.keptTags} tags (${formatBytes(r.keptBytes)})`,
          ...r.removedTags.map((t) => `  ${t}`),
        ]
      : [`${r.store}: this store is not pruned by task-cache (its own retention applies)`];
    lines.push(`state dir: ${verb} ${r.removedStateFiles} files`);
    io.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  } finally {
    await cache.close();
  }
}
