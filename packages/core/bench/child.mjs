/**
 * One measured operation in a fresh process, so its peak RSS (`process.resourceUsage().maxRSS`,
 * worker threads included) is its own. Prints one JSON line. Used by run.ts.
 * Usage: node child.mjs '<json>' with { op: 'save' | 'restore' | 'pack', ... }.
 *
 * NOTE: plain JavaScript running the COMPILED package (`packages/core/dist`, built by the bench
 * script), as users do: a TypeScript loader (tsx) would add its own thread, start-up time and
 * ~80 MB of RSS that the published package does not have.
 */
import { subscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;
const core = await import(dist('index.js'));
// The internal building blocks, from the bundle's internal entry point (src/internals.ts).
const { packChunks, codecPool, chunkParams, hasNodeZstd } = await import(dist('internals.js'));
// NOTE: resolved through node_modules (the oci package's dist), not the source paths.
const ociName = '@task-cache/oci';
const { createOciBackend } = await import(ociName);

/** @type {{ op: 'save' | 'restore' | 'pack', dir: string, url?: string, tag?: string, task?: string, codec?: string, extra?: object, env?: Record<string, string> }} */
const args = JSON.parse(process.argv[2] ?? '{}');
// HTTP requests undici sends (registry and token server), counted through its diagnostics channel.
let requests = 0;
subscribe('undici:request:create', () => {
  requests++;
});
// BENCH_TRACE=1: one line per request on stderr (ms since start: created, headers, done; method,
// path) — where a round trip stalls the pipeline.
if (process.env.BENCH_TRACE === '1') {
  const t0 = performance.now();
  const seen = new Map();
  const ms = () => (performance.now() - t0).toFixed(0);
  subscribe('undici:request:create', ({ request }) => seen.set(request, [ms()]));
  subscribe('undici:request:headers', ({ request }) => seen.get(request)?.push(ms()));
  subscribe('undici:request:trailers', ({ request }) => {
    const t = seen.get(request);
    if (!t) return;
    process.stderr.write(`trace ${t.join(' ')} ${ms()} ${request.method} ${request.path.slice(0, 80)}\n`);
  });
}
// Start the worker threads the operation uses before the clock starts (a few tens of ms; not
// what is measured). A restore has no pack worker (each thread costs ~20 MB of RSS).
{
  const empty = await mkdtemp(join(tmpdir(), 'tc-bench-warm-'));
  if (args.op !== 'restore') {
    const job = packChunks({
      dir: empty,
      generates: ['dist/**'],
      keepMtimes: false,
      chunking: chunkParams(1024 * 1024),
    });
    for await (const c of job.chunks) c.release();
  }
  const pool = codecPool();
  const codec = hasNodeZstd() && args.codec !== 'zstd-codec' ? 'node' : 'zstd-codec';
  await Promise.all(
    Array.from({ length: pool.size * 2 }, () => pool.compress(codec, new Uint8Array(1024), 3)),
  );
  await rm(empty, { recursive: true, force: true });
}
const started = performance.now();
let result;
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
  // `env`: the credentials and CA of an authenticated registry (deployments.ts), nothing from HOME.
  const store = createOciBackend(
    args.env ? { url: args.url, env: args.env, authFiles: null } : { url: args.url },
  );
  try {
    if (args.op === 'save') {
      result = await core.saveEntry(store, {
        dir: args.dir,
        generates: ['dist/**'],
        tag: args.tag,
        task: args.task ?? 'bench',
        key: args.tag,
        ...(args.codec ? { codec: args.codec } : {}),
        ...(args.extra ?? {}),
      });
    } else {
      result = await core.restoreEntry(store, {
        dir: args.dir,
        generates: ['dist/**'],
        tag: args.tag,
        ...(args.codec ? { codec: args.codec } : {}),
        ...(args.extra ?? {}),
      });
    }
  } finally {
    await store.close?.();
  }
}
const ms = performance.now() - started;
const sent = requests;
const usage = process.resourceUsage();
console.log(
  JSON.stringify({
    result,
    ms,
    maxRssBytes: usage.maxRSS * 1024,
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
    requests: sent,
  }),
);
