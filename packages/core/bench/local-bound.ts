/**
 * The bounded local store (issue 20): `maxSize` 64 MB and 10 saves of ~20 MB entries (random,
 * incompressible, no shared chunks). After each save (and its background prune) prints the
 * layout's blob bytes; checks the store stays within maxSize + one entry and the newest entries
 * restore. Then the run time of one save with and without a prune pending (the prune waits on the
 * layout's lock, held by this script, while the run returns).
 *
 * `pnpm --filter @task-cache/core exec tsx bench/local-bound.ts`; BENCH_SCALE=4 divides every size
 * by 4 (a loaded machine).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCache } from '../src/index.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const MB = 1e6;
const maxSize = (64 * MB) / scale;
const entrySize = Math.round((20 * MB) / scale);
const work = await mkdtemp(join(tmpdir(), 'tc-bench-bound-'));
const layout = join(work, 'layout');
const stateDir = join(work, 'state');
const options = { store: `oci-layout:${layout}`, stateDir, maxSize, pruneIntervalMs: 0, env: {} };

async function blobBytes(): Promise<number> {
  let total = 0;
  const dir = join(layout, 'blobs', 'sha256');
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

async function task(name: string) {
  const dir = join(work, 'p', name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src', 'in'), name);
  return { task: name, dir, sources: ['src/**'], generates: ['dist/**'] };
}
const build = (dir: string) => async () => {
  await mkdir(join(dir, 'dist'), { recursive: true });
  await writeFile(join(dir, 'dist', 'out.bin'), randomBytes(entrySize));
};

console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; maxSize ${maxSize / MB} MB, entries ${entrySize / MB} MB`,
);
let worst = 0;
const tasks = [];
for (let i = 0; i < 10; i++) {
  const t = await task(`t${i}`);
  tasks.push(t);
  const cache = createCache(options);
  const r = await cache.run(t, build(t.dir));
  await cache.close(); // waits for the background prune
  const bytes = await blobBytes();
  worst = Math.max(worst, bytes);
  console.log(
    `save ${i}: ${r.status} in ${r.stats.totalMs.toFixed(0)} ms; store ${(bytes / MB).toFixed(1)} MB`,
  );
}
const withinCap = worst <= maxSize + entrySize * 1.01;
console.log(
  `largest store after a save: ${(worst / MB).toFixed(1)} MB (cap + one entry: ${((maxSize + entrySize) / MB).toFixed(1)} MB) → ${withinCap ? 'OK' : 'OVER'}`,
);
const cache = createCache(options);
for (const t of tasks.slice(-2)) {
  await rm(join(t.dir, 'dist'), { recursive: true });
  const r = await cache.run(t, () => {
    throw new Error('expected a hit');
  });
  console.log(`newest ${t.task}: ${r.status}`);
}
await cache.close();

// A run with a prune pending: the layout's lock is taken by "another process" once the save is
// committed, so the background prune waits while the run returns.
async function timedRun(pending: boolean): Promise<number> {
  const t = await task(`timed-${pending}`);
  const lock = join(layout, 'index.json.lock');
  const c = createCache({
    ...options,
    onEvent: (e) => {
      if (pending && e.type === 'saved')
        writeFileSync(
          lock,
          JSON.stringify({
            token: 'b',
            pid: process.pid,
            host: hostname(),
            createdAt: Date.now(),
            ttlMs: 60_000,
          }),
        );
    },
  });
  const started = performance.now();
  await c.run(t, build(t.dir));
  const ms = performance.now() - started;
  if (pending) await unlink(lock);
  await c.close();
  return ms;
}
const without = await timedRun(false);
const withPending = await timedRun(true);
console.log(
  `run time: no prune pending ${without.toFixed(0)} ms, a prune pending (held back by a lock) ${withPending.toFixed(0)} ms`,
);
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
await rm(work, { recursive: true, force: true });
