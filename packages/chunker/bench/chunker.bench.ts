/**
 * Throughput benchmark of @task-cache/chunker (run: `pnpm --filter @task-cache/chunker bench`; for
 * Node 24: `PATH=/opt/node24/node_modules/.bin:$PATH pnpm --filter @task-cache/chunker bench`).
 *
 * Corpora (256 MiB each, built in memory before timing):
 *  - random: crypto-random bytes;
 *  - build-output: a tar-like stream (512-byte headers, files padded to 512) of the files under the
 *    workspace's node_modules/.pnpm (JS, .d.ts, source maps, JSON, wasm, native binaries), sorted by
 *    path, cycled to 256 MiB if the tree is smaller.
 * For avg 64 KiB and 1 MiB (min avg/4, max avg*4, normalization 2) it times, on the same data:
 *  - chunkBuffer (one call over the whole corpus);
 *  - chunkStream over 1 MiB pieces (views of the corpus; chunk data included);
 *  - the peer @dstanesc/wasm-chunking-fastcdc-node compute_chunks (fastcdc-rs in wasm);
 *  - Buffer.copy of the corpus into a preallocated, pre-faulted buffer (the memory-bandwidth ceiling).
 * Each measurement: 1 warm-up run, then RUNS timed runs; prints the median and the best wall-clock
 * throughput and the best CPU-time throughput (bytes per CPU-second of this process: on a loaded,
 * shared machine it is closer to the quiet-machine figure than wall time), in MB/s (10^6 bytes/s),
 * plus the load average before and after. Env: BENCH_MIB (default 256), BENCH_RUNS (default 5).
 */
import { randomFillSync } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chunkBuffer, chunkStream } from '../src/index.js';

const require = createRequire(import.meta.url);
const peer = require('@dstanesc/wasm-chunking-fastcdc-node') as {
  compute_chunks(source: Uint8Array, min: number, avg: number, max: number): Uint32Array;
};

const SIZE = Number(process.env.BENCH_MIB ?? 256) * 1024 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function randomCorpus(): Buffer {
  const data = Buffer.allocUnsafe(SIZE);
  for (let i = 0; i < SIZE; i += 65536) randomFillSync(data, i, Math.min(65536, SIZE - i));
  return data;
}

function listFiles(dir: string, out: string[]): void {
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of entries) {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st?.isDirectory()) listFiles(path, out);
    else if (st?.isFile()) out.push(path);
  }
}

function buildOutputCorpus(): { data: Buffer; files: number; distinct: number } {
  const root = fileURLToPath(new URL('../../../node_modules/.pnpm', import.meta.url));
  const files: string[] = [];
  listFiles(root, files);
  if (files.length === 0) throw new Error(`no files under ${root}`);
  const data = Buffer.alloc(SIZE);
  let at = 0;
  let distinct = 0;
  for (let i = 0; at < SIZE; i++) {
    const path = files[i % files.length]!;
    const body = readFileSync(path);
    const header = Buffer.alloc(512);
    header.write(`${path.slice(root.length + 1)}\0${body.length.toString(8)}\0ustar`, 0, 'latin1');
    for (const part of [header, body, Buffer.alloc((512 - (body.length % 512)) % 512)]) {
      const n = Math.min(part.length, SIZE - at);
      part.copy(data, at, 0, n);
      at += n;
      if (at >= SIZE) break;
    }
    if (i < files.length) distinct = at;
  }
  return { data, files: files.length, distinct };
}

/** Wall-clock seconds and CPU seconds (user + system, all threads of this process) of one run. */
async function timeAsync(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

interface Row {
  corpus: string;
  avg: string;
  what: string;
  chunks: number;
  medianMBs: number;
  bestMBs: number;
  /** Best run by CPU time: bytes per CPU-second, less sensitive to other processes than wall time. */
  bestCpuMBs: number;
}

const rows: Row[] = [];

async function measure(
  corpus: string,
  avg: string,
  what: string,
  bytes: number,
  run: () => number | Promise<number>,
): Promise<void> {
  let chunks = await run(); // warm-up
  const speeds: number[] = [];
  const cpuSpeeds: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let n = 0;
    const seconds = await timeAsync(async () => {
      n = await run();
    });
    chunks = n;
    speeds.push(bytes / 1e6 / seconds.wall);
    cpuSpeeds.push(bytes / 1e6 / seconds.cpu);
  }
  speeds.sort((a, b) => a - b);
  const row = {
    corpus,
    avg,
    what,
    chunks,
    medianMBs: Math.round(speeds[Math.floor(speeds.length / 2)]!),
    bestMBs: Math.round(speeds[speeds.length - 1]!),
    bestCpuMBs: Math.round(Math.max(...cpuSpeeds)),
  };
  rows.push(row);
  console.log(
    `${corpus.padEnd(12)} avg ${avg.padEnd(6)} ${what.padEnd(28)} chunks ${String(chunks).padStart(6)}  ` +
      `wall: median ${String(row.medianMBs).padStart(6)} MB/s  best ${String(row.bestMBs).padStart(6)} MB/s  ` +
      `cpu-time: best ${String(row.bestCpuMBs).padStart(6)} MB/s`,
  );
}

async function main(): Promise<void> {
  const load0 = loadavg();
  console.log(
    `node ${process.version} ${process.arch}, ${cpus()[0]?.model ?? '?'} x${cpus().length}, ` +
      `${SIZE / 1024 / 1024} MiB per corpus, ${RUNS} runs (+1 warm-up), ` +
      `load average ${load0.map((x) => x.toFixed(2)).join(' ')}`,
  );
  const build = buildOutputCorpus();
  console.log(
    `build-output corpus: ${build.files} files from node_modules/.pnpm, ${(build.distinct / 1e6).toFixed(0)} MB ` +
      `distinct before cycling`,
  );
  const corpora: [string, Buffer][] = [
    ['random', randomCorpus()],
    ['build-output', build.data],
  ];
  const sink = Buffer.alloc(SIZE);
  for (const [name, data] of corpora) {
    await measure(name, '-', 'Buffer.copy (ceiling)', SIZE, () => {
      data.copy(sink);
      return 0;
    });
    for (const [label, avgSize] of [
      ['64KiB', 64 * 1024],
      ['1MiB', 1024 * 1024],
    ] as const) {
      await measure(name, label, 'chunkBuffer', SIZE, () => chunkBuffer(data, { avgSize }).length);
      await measure(name, label, 'chunkStream (1 MiB pieces)', SIZE, async () => {
        let n = 0;
        async function* pieces() {
          for (let i = 0; i < data.length; i += 1024 * 1024) yield data.subarray(i, i + 1024 * 1024);
        }
        for await (const _ of chunkStream(pieces(), { avgSize })) n++;
        return n;
      });
      await measure(
        name,
        label,
        'peer wasm-chunking-fastcdc',
        SIZE,
        () => peer.compute_chunks(data, avgSize / 4, avgSize, avgSize * 4).length,
      );
    }
  }
  const load1 = loadavg();
  console.log(`load average after: ${load1.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(JSON.stringify({ node: process.version, date: new Date().toISOString(), load0, load1, rows }));
}

await main();
