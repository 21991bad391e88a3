/**
 * Direct measurement of the extract worker on many small files: an in-memory archive of FILES ×
 * SIZE bytes (PER_DIR files per directory) fed to `extractInWorker` in 1 MiB pieces of shared
 * memory, as restore feeds it. Prints wall and CPU time per run. Not part of `pnpm bench`.
 *
 * Usage (from packages/core): TSX_TSCONFIG_PATH=../../tsconfig.json tsx bench/extract-small.ts
 * Env: FILES (20000), SIZE (10240), PER_DIR (200), RUNS (3), TASK_CACHE_BENCH_DIR (where staging
 * goes).
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar-stream';
import { extractInWorker } from '../src/workers/extract.js';

const files = Number(process.env.FILES ?? 20_000);
const size = Number(process.env.SIZE ?? 10_240);
const runs = Number(process.env.RUNS ?? 3);
/** Files per directory, consecutive in the archive as the packer writes them. */
const perDir = Number(process.env.PER_DIR ?? 200);
const root = join(process.env.TASK_CACHE_BENCH_DIR || join(tmpdir(), 'task-cache-bench'), 'extract-small');

async function archive(n: number): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  const done = (async () => {
    for await (const p of pack as unknown as AsyncIterable<Buffer>) parts.push(p);
  })();
  const body = Buffer.alloc(size, 'x');
  for (let i = 0; i < n; i++) {
    body.writeUInt32LE(i, 0);
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: `dist/d${Math.floor(i / perDir)}/f${i}.js`, mode: 0o644 }, body, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

async function* pieces(all: Buffer) {
  const PIECE = 1024 * 1024;
  for (let off = 0; off < all.byteLength; off += PIECE) {
    const n = Math.min(PIECE, all.byteLength - off);
    const view = new Uint8Array(new SharedArrayBuffer(n));
    view.set(all.subarray(off, off + n));
    yield view;
  }
}

const all = await archive(files);
await rm(root, { recursive: true, force: true });
await mkdir(root, { recursive: true });
// warm-up: starts the worker threads
await extractInWorker(join(root, 'warm'), pieces(await archive(200)), {
  generates: ['dist/**'],
  keepMtimes: false,
});
for (let r = 0; r < runs; r++) {
  const dst = join(root, `r${r}`);
  await mkdir(dst);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const entries = await extractInWorker(dst, pieces(all), { generates: ['dist/**'], keepMtimes: false });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${files} × ${size} B: ${ms.toFixed(0)} ms (${((files / ms) * 1000).toFixed(0)} files/s), cpu user ${(cpu.user / 1000).toFixed(0)} ms sys ${(cpu.system / 1000).toFixed(0)} ms, ${entries.length} entries`,
  );
  await rm(dst, { recursive: true, force: true });
}
await rm(root, { recursive: true, force: true });
