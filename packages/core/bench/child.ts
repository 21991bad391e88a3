/**
 * One measured operation in a fresh process, so its peak RSS (`process.resourceUsage().maxRSS`)
 * is its own. Prints one JSON line. Used by run.ts (and by the bounded-memory test's sibling).
 * Usage: tsx child.ts '<json>' with { op: 'save' | 'restore' | 'pack', ... }.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOciBackend } from '@task-cache/oci';
import { restoreEntry, saveEntry } from '../src/index.js';
import { chunkParams } from '../src/internal/chunk.js';
import { hasNodeZstd } from '../src/internal/zstd.js';
import { codecPool } from '../src/workers/codec-pool.js';
import { packChunks } from '../src/workers/pack.js';

interface Args {
  op: 'save' | 'restore' | 'pack';
  dir: string;
  url?: string;
  tag?: string;
  task?: string;
  codec?: 'auto' | 'node' | 'zstd-codec';
  extra?: Record<string, unknown>;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
// NOTE: start the worker threads before the clock starts. From the TypeScript sources each
// worker first loads tsx (~0.3–1 s on a loaded machine); the compiled package starts them in
// ~30 ms. The figures are about the pipeline, not about tsx.
{
  const empty = await mkdtemp(join(tmpdir(), 'tc-bench-warm-'));
  const job = packChunks({
    dir: empty,
    generates: ['dist/**'],
    keepMtimes: false,
    chunking: chunkParams(1024 * 1024),
  });
  for await (const c of job.chunks) c.release();
  const pool = codecPool();
  const codec = hasNodeZstd() && args.codec !== 'zstd-codec' ? 'node' : 'zstd-codec';
  await Promise.all(
    Array.from({ length: pool.size * 2 }, () => pool.compress(codec, new Uint8Array(1024), 3)),
  );
  await rm(empty, { recursive: true, force: true });
}
const started = performance.now();
let result: unknown;
if (args.op === 'pack') {
  const job = packChunks({
    dir: args.dir,
    generates: ['dist/**'],
    keepMtimes: false,
    chunking: chunkParams(1024 * 1024),
  });
  let chunks = 0;
  for await (const c of job.chunks) {
    chunks++;
    c.release();
  }
  result = { ...job.stats, chunks };
} else {
  const store = createOciBackend({ url: args.url as string });
  try {
    if (args.op === 'save') {
      result = await saveEntry(store, {
        dir: args.dir,
        generates: ['dist/**'],
        tag: args.tag as string,
        task: args.task ?? 'bench',
        key: args.tag as string,
        ...(args.codec ? { codec: args.codec } : {}),
        ...(args.extra ?? {}),
      });
    } else {
      result = await restoreEntry(store, {
        dir: args.dir,
        generates: ['dist/**'],
        tag: args.tag as string,
        ...(args.codec ? { codec: args.codec } : {}),
        ...(args.extra ?? {}),
      });
    }
  } finally {
    await store.close?.();
  }
}
const ms = performance.now() - started;
const usage = process.resourceUsage();
console.log(
  JSON.stringify({
    result,
    ms,
    maxRssBytes: usage.maxRSS * 1024,
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
  }),
);
