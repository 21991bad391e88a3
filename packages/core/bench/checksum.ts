/**
 * Benchmark of checksum() on a source tree of 50 000 files (plus a few large ones, streamed).
 * Run: `pnpm tsx packages/core/bench/checksum.ts [files]` from the repository root.
 * Prints wall time per run and files/s; figures depend on the machine's load and page cache.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checksum } from '../src/key/checksum.js';

const files = Number(process.argv[2] ?? 50_000);
const dir = await mkdtemp(join(tmpdir(), 'tc-bench-checksum-'));
try {
  const perDir = 500;
  for (let d = 0; d < Math.ceil(files / perDir); d++) {
    await mkdir(join(dir, 'src', `m${d}`), { recursive: true });
    const batch: Promise<void>[] = [];
    for (let i = d * perDir; i < Math.min(files, (d + 1) * perDir); i++) {
      batch.push(writeFile(join(dir, 'src', `m${d}`, `f${i}.ts`), `export const v${i} = ${i};\n`.repeat(40)));
    }
    await Promise.all(batch);
  }
  for (let i = 0; i < 3; i++)
    await writeFile(join(dir, 'src', `big${i}.bin`), Buffer.alloc(64 * 1024 * 1024, i));
  console.log(
    `checksum bench: ${files} files of ~1 kB + 3 × 64 MiB; ${availableParallelism()} CPUs, loadavg ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  for (const concurrency of [1, 16, 64]) {
    for (let run = 0; run < 2; run++) {
      const t = performance.now();
      const sum = await checksum({ dir, sources: ['src/**'], concurrency });
      const ms = performance.now() - t;
      console.log(
        `concurrency ${String(concurrency).padStart(2)} run ${run + 1}: ${ms.toFixed(0)} ms (${((files / ms) * 1000).toFixed(0)} files/s) ${sum.slice(0, 12)}…`,
      );
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
