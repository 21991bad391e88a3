/**
 * One measured operation in a fresh process, so its peak RSS (`process.resourceUsage().maxRSS`,
 * worker threads included) is its own. Prints one JSON line. Used by run.ts.
 * Usage: tsx child.ts '<json>' with { op: 'save' | 'restore' | 'pack', ... }.
 *
 * NOTE: it runs the COMPILED package (`packages/core/dist`, built by the bench script), as users
 * do: from the TypeScript sources every worker thread would first load tsx, which costs start-up
 * time and ~40 MB of RSS per thread that the published package does not have.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Core = typeof import('../src/index.js');
type Pack = typeof import('../src/workers/pack.js');
type Pool = typeof import('../src/workers/codec-pool.js');
type Chunk = typeof import('../src/internal/chunk.js');
type Zstd = typeof import('../src/internal/zstd.js');
type Oci = typeof import('@task-cache/oci');

const dist = (p: string) => new URL(`../dist/${p}`, import.meta.url).href;
const core = (await import(dist('index.js'))) as Core;
const { packChunks } = (await import(dist('workers/pack.js'))) as Pack;
const { codecPool } = (await import(dist('workers/codec-pool.js'))) as Pool;
const { chunkParams } = (await import(dist('internal/chunk.js'))) as Chunk;
const { hasNodeZstd } = (await import(dist('internal/zstd.js'))) as Zstd;
// NOTE: resolved through node_modules (the oci package's dist), not the source paths.
const ociName = '@task-cache/oci';
const { createOciBackend } = (await import(ociName)) as Oci;

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
// Start the worker threads before the clock starts (a few tens of ms; not what is measured).
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
      result = await core.saveEntry(store, {
        dir: args.dir,
        generates: ['dist/**'],
        tag: args.tag as string,
        task: args.task ?? 'bench',
        key: args.tag as string,
        ...(args.codec ? { codec: args.codec } : {}),
        ...(args.extra ?? {}),
      });
    } else {
      result = await core.restoreEntry(store, {
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
