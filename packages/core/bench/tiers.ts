/**
 * Two tiers (issue 20): a hit of a 100 MB entry (random, incompressible) from the local tier vs the
 * same hit from the loopback registry, and from the same layout as the only store (the floor) (testkit's docker-registry, anonymous, plain HTTP). Each hit
 * is a fresh cache (as a new process), a fresh state dir (no up-to-date stamp) and no outputs on disk.
 *
 * `cd packages/core && TSX_TSCONFIG_PATH=../../tsconfig.json npx tsx bench/tiers.ts`; BENCH_SCALE=4
 * divides the size by 4, BENCH_REPEAT (default 3) sets the hits per side (the median is reported).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry } from '@task-cache/testkit';
import { createCache } from '../src/index.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const repeat = Number(process.env.BENCH_REPEAT ?? 3);
const MB = 1e6;
const size = Math.round((100 * MB) / scale);
const work = await mkdtemp(join(tmpdir(), 'tc-bench-tiers-'));
const reg = await startRegistry({ mode: 'anonymous' });
const store = reg.ociUrl('bench/tiers');
const env = { TASK_CACHE_DIR: join(work, 'local-tier') };
const dir = join(work, 'project');
await mkdir(join(dir, 'src'), { recursive: true });
await writeFile(join(dir, 'src', 'in'), 'tiers');
const task = { task: 'big', dir, sources: ['src/**'], generates: ['dist/**'] };
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
console.log(
  `load average ${load()}; entry ${size / MB} MB; ${repeat} hits per side; Node ${process.version}`,
);

let n = 0;
async function hit(tiers: boolean, layoutAlone = false): Promise<number> {
  await rm(join(dir, 'dist'), { recursive: true, force: true });
  const cache = createCache({
    store: layoutAlone ? `oci-layout:${env.TASK_CACHE_DIR}` : store,
    tiers,
    lock: false,
    stateDir: join(work, `state-${n++}`),
    env,
  });
  const t0 = performance.now();
  const r = await cache.run(task, async () => {
    throw new Error('the hit built');
  });
  const ms = performance.now() - t0;
  await cache.close();
  if (r.status !== 'restored') throw new Error(`expected a hit, got ${r.status}`);
  return ms;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

try {
  const saver = createCache({ store, lock: false, stateDir: join(work, 'state-save'), env: {} });
  const saved = await saver.run(task, async () => {
    await mkdir(join(dir, 'dist'), { recursive: true });
    await writeFile(join(dir, 'dist', 'out.bin'), randomBytes(size));
  });
  await saver.close();
  if (saved.status !== 'saved') throw new Error(`expected a save, got ${saved.status}`);
  const remote: number[] = [];
  for (let i = 0; i < repeat; i++) remote.push(await hit(false));
  const fill = await hit(true); // the remote hit that fills the local tier
  const local: number[] = [];
  for (let i = 0; i < repeat; i++) local.push(await hit(true));
  const alone: number[] = [];
  for (let i = 0; i < repeat; i++) alone.push(await hit(false, true));
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
  console.log(`registry hit (ms): ${fmt(remote)} — median ${median(remote).toFixed(0)}`);
  console.log(`first hit through the tiers, filling the local tier (ms): ${fill.toFixed(0)}`);
  console.log(`local-tier hit (ms): ${fmt(local)} — median ${median(local).toFixed(0)}`);
  console.log(`the same layout as the only store (ms): ${fmt(alone)} — median ${median(alone).toFixed(0)}`);
  console.log(`speed-up: ${(median(remote) / median(local)).toFixed(2)}×; load average ${load()}`);
} finally {
  await reg.close();
  await rm(work, { recursive: true, force: true });
}
