// Child of bench/small.ts (plain node, the built package): `import <projectDir>` prints the import
// time of @task-cache/core; `inproc <projectDir> <tarFile> <runs>` runs the task's hit `runs` times
// in this one process (outputs removed before each: a restore; kept: up to date) and `tar -xf` of
// the same files for comparison. Prints one JSON line.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const [mode, dir, tarFile, runsArg] = process.argv.slice(2);
const t0 = performance.now();
const core = await import('@task-cache/core');
const importMs = performance.now() - t0;
if (mode === 'import') {
  process.stdout.write(`${JSON.stringify({ importMs })}\n`);
  process.exit(0);
}
const runs = Number(runsArg ?? 7);
const cache = core.createCache();
const task = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
const build = () => {
  throw new Error('bench: the hit built');
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
await cache.run(task, build); // warm: loads the modules, opens the store
const restore = [];
const upToDate = [];
const tar = [];
for (let i = 0; i < runs; i++) {
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  let t = performance.now();
  const r = await cache.run(task, build);
  restore.push(performance.now() - t);
  if (r.status !== 'restored' || r.reason) throw new Error(`bench: expected a restore, got ${r.status}`);
  t = performance.now();
  const u = await cache.run(task, build);
  upToDate.push(performance.now() - t);
  if (u.reason !== 'up-to-date') throw new Error('bench: expected up-to-date');
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  t = performance.now();
  execFileSync('tar', ['-xf', tarFile, '-C', dir]);
  tar.push(performance.now() - t);
}
await cache.close();
process.stdout.write(
  `${JSON.stringify({ restoreMs: median(restore), upToDateMs: median(upToDate), tarMs: median(tar) })}\n`,
);
