/**
 * Accounting across runs and processes: every run of a cache appends one line to
 * `<stateDir>/stats/runs.jsonl` (one `write` of a line opened with `O_APPEND`, so concurrent
 * processes interleave whole lines), and `cache.stats()` adds the lines up per task and store.
 * The cache also keeps its own runs in memory for `cache.summary()`.
 */
import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Explanation } from '../explain/diff.js';
import type { MissReason, NotSavedReason, RunStats } from '../run/types.js';

/** One run, as `cache.summary()` lists it. */
export interface RunRecord {
  /** RFC 3339 time the run finished. */
  time: string;
  task: string;
  key: string;
  /** Redacted store location (`''` when the cache is disabled or the store could not be opened). */
  store: string;
  status: 'restored' | 'saved' | 'built';
  reason?: NotSavedReason | 'up-to-date';
  missReason?: MissReason;
  explanation?: Explanation;
  timeSavedMs?: number;
  stats: RunStats;
}

/** Cumulative counters of one task in one store (`cache.stats()`). */
export interface TaskStoreCounters {
  task: string;
  store: string;
  runs: number;
  hits: number;
  misses: number;
  /** Sum of the time saved by hits (build durations recorded minus restore times), in ms. */
  timeSavedMs: number;
  /** Sum of the time spent building, in ms. */
  buildMs: number;
  /** Compressed bytes uploaded by saves. */
  bytesPushed: number;
  /** Compressed bytes downloaded by restores. */
  bytesPulled: number;
  /** Chunks saves did not upload because the store already had them (or a base entry did). */
  chunksDeduplicated: number;
}

/** What `cache.summary()` returns (and writes as JSON when asked). */
export interface RunSummary {
  /** RFC 3339 time of the summary. */
  created: string;
  /** Every run of this cache instance, in order. */
  runs: RunRecord[];
  /** The runs' counters, per task and store. */
  totals: TaskStoreCounters[];
}

/** The run log of one cache instance. */
export interface RunLog {
  /** Records a finished run (in memory at once; appended to the state dir in the background). */
  record(run: RunRecord): void;
  /** This instance's runs. */
  readonly runs: readonly RunRecord[];
  /** Waits for the pending appends. */
  flushed(): Promise<void>;
}

/** The log file under `stateDir`. */
export const statsFile = (stateDir: string) => join(stateDir, 'stats', 'runs.jsonl');

/** Counters of the run, as one line of the log holds them. */
function line(r: RunRecord): string {
  return `${JSON.stringify({
    v: 1,
    time: r.time,
    task: r.task,
    store: r.store,
    status: r.status,
    timeSavedMs: Math.round(r.timeSavedMs ?? 0),
    buildMs: Math.round(r.stats.buildMs),
    bytesPushed: r.stats.bytesPushed,
    bytesPulled: r.stats.bytesFetched,
    chunksDeduplicated: Math.max(0, r.stats.chunksTotal - r.stats.chunksPushed),
  })}\n`;
}

/** Creates the run log of a cache whose state lives in `stateDir`. */
export function createRunLog(stateDir: string): RunLog {
  const runs: RunRecord[] = [];
  let pending: Promise<void> = Promise.resolve();
  return {
    runs,
    record(run) {
      runs.push(run);
      const text = line(run);
      pending = pending.then(async () => {
        try {
          await mkdir(join(stateDir, 'stats'), { recursive: true });
          await appendFile(statsFile(stateDir), text);
        } catch {
          // NOTE: accounting is best effort: it never fails a build.
        }
      });
    },
    flushed: () => pending,
  };
}

function add(map: Map<string, TaskStoreCounters>, task: string, store: string): TaskStoreCounters {
  const id = `${task}\0${store}`;
  let c = map.get(id);
  if (!c) {
    c = {
      task,
      store,
      runs: 0,
      hits: 0,
      misses: 0,
      timeSavedMs: 0,
      buildMs: 0,
      bytesPushed: 0,
      bytesPulled: 0,
      chunksDeduplicated: 0,
    };
    map.set(id, c);
  }
  return c;
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** Adds up lines (or records) into counters per task and store, sorted by task then store. */
function total(
  lines: Iterable<{ task: unknown; store: unknown; status: unknown } & Record<string, unknown>>,
): TaskStoreCounters[] {
  const map = new Map<string, TaskStoreCounters>();
  for (const l of lines) {
    if (typeof l.task !== 'string' || typeof l.store !== 'string') continue;
    const c = add(map, l.task, l.store);
    c.runs += 1;
    if (l.status === 'restored') c.hits += 1;
    else c.misses += 1;
    c.timeSavedMs += num(l.timeSavedMs);
    c.buildMs += num(l.buildMs);
    c.bytesPushed += num(l.bytesPushed);
    c.bytesPulled += num(l.bytesPulled);
    c.chunksDeduplicated += num(l.chunksDeduplicated);
  }
  return [...map.values()].sort((a, b) =>
    a.task !== b.task ? (a.task < b.task ? -1 : 1) : a.store < b.store ? -1 : a.store > b.store ? 1 : 0,
  );
}

/** The cumulative counters of every run logged under `stateDir` (any process). Never throws. */
export async function readCounters(stateDir: string): Promise<TaskStoreCounters[]> {
  let text: string;
  try {
    text = await readFile(statsFile(stateDir), 'utf8');
  } catch {
    return [];
  }
  const lines = [];
  for (const l of text.split('\n')) {
    if (l === '') continue;
    try {
      lines.push(JSON.parse(l));
    } catch {
      // A torn line (a process killed mid-write): skipped.
    }
  }
  return total(lines);
}

/** The summary of `runs`; written to `file` (atomically, JSON) when given. */
export async function summarize(runs: readonly RunRecord[], file?: string): Promise<RunSummary> {
  const summary: RunSummary = {
    created: new Date().toISOString(),
    runs: [...runs],
    totals: total(runs.map((r) => JSON.parse(line(r)))),
  };
  if (file !== undefined) {
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(summary, null, 2)}\n`);
    await rename(tmp, file);
  }
  return summary;
}
