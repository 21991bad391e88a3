/**
 * Benchmark of `@task-cache/oci` (run with `pnpm --filter @task-cache/oci bench`, i.e. tsx):
 *
 * 1. `curl` pushes the whole payload as ONE blob to the local anonymous registry (POST, then
 *    a monolithic PUT of the file) and GETs it back: the loopback baseline. The PUT streams the
 *    file with `--upload-file` (`-T`): curl 7.88 refuses `--data-binary @file` for 1 GiB
 *    ("option --data-binary: out of memory", it reads the file into memory, up to a 1 GiB cap).
 * 2. The registry client pushes and fetches the same bytes as 1 MiB blobs (verified reads).
 * 3. The image-layout store pushes and fetches the same 1 MiB blobs (fsync on and off).
 *
 * Payload size: `BENCH_MIB` (default 1024 = 1 GiB). Blob transfers run `BENCH_CONCURRENCY`
 * (default 8) at a time. Prints a Markdown table and a JSON line.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLayoutStore, createOciBackend, type Descriptor, type OciStore } from '@task-cache/oci';
import { startRegistry } from '@task-cache/testkit';
import { Agent, type Dispatcher } from 'undici';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const BLOBS = Number(process.env.BENCH_MIB ?? 1024);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const MEDIA_TYPE = 'application/vnd.task-cache.chunk.v1+zstd';

interface Result {
  name: string;
  bytes: number;
  seconds: number;
  requests: number | undefined;
  note?: string;
}

const results: Result[] = [];

// Distinct 1 MiB blobs derived from one random MiB (blob i has i stamped in its first bytes), so
// the payload never sits in memory whole and every blob has its own digest.
const base = randomBytes(MiB);
function blob(i: number): Buffer {
  const b = Buffer.from(base);
  b.writeUInt32BE(i, 0);
  b.writeUInt32BE(i ^ 0x5a5a5a5a, MiB - 4);
  return b;
}
const descriptors: Descriptor[] = Array.from({ length: BLOBS }, (_, i) => {
  const bytes = blob(i);
  return {
    mediaType: MEDIA_TYPE,
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    size: MiB,
  };
});

async function pool(count: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

async function drain(source: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of source) n += chunk.byteLength;
  return n;
}

async function timed(
  name: string,
  bytes: number,
  requests: number | undefined | (() => number | undefined),
  fn: () => Promise<void>,
  note?: string,
): Promise<void> {
  const start = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const count = typeof requests === 'function' ? requests() : requests;
  results.push({ name, bytes, seconds, requests: count, ...(note ? { note } : {}) });
  console.error(`${name}: ${(bytes / MiB / seconds).toFixed(1)} MiB/s in ${seconds.toFixed(2)} s`);
}

async function benchCurl(baseUrl: string, work: string): Promise<void> {
  const file = join(work, 'payload.bin');
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let i = 0; i < BLOBS; i++) {
    const b = blob(i);
    hash.update(b);
    if (!out.write(b)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  const digest = `sha256:${hash.digest('hex')}`;
  const size = BLOBS * MiB;

  await timed('curl: push as one blob (POST + PUT -T file)', size, 2, async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '-X',
      'POST',
      `${baseUrl}/v2/bench/curl/blobs/uploads/`,
    ]);
    const location = /^location:\s*(\S+)/im.exec(stdout)?.[1];
    if (!location) throw new Error(`no Location in POST response:\n${stdout}`);
    const url = new URL(location, baseUrl);
    url.searchParams.set('digest', digest);
    const { stdout: code } = await run(
      'curl',
      [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-X',
        'PUT',
        '-H',
        'Content-Type: application/octet-stream',
        '--upload-file',
        file,
        url.href,
      ],
      { maxBuffer: 1 << 20 },
    );
    if (code !== '201') throw new Error(`curl PUT answered ${code}`);
  });
  await timed('curl: fetch the one blob (GET)', size, 1, async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download}',
      `${baseUrl}/v2/bench/curl/blobs/${digest}`,
    ]);
    if (stdout !== `200 ${size}`) throw new Error(`curl GET answered ${stdout}`);
  });
  await rm(file);
}

/**
 * Pushes then fetches every blob through `store`. `requests` counts HTTP requests when the
 * store makes them; without it one blob operation counts as one request (the layout store).
 */
async function benchStore(label: string, inner: OciStore, requests?: () => number): Promise<void> {
  const size = BLOBS * MiB;
  let ops = 0;
  const count = requests ?? (() => ops);
  const store: Pick<OciStore, 'pushBlob' | 'fetchBlob'> = {
    pushBlob: async (d, body, o) => {
      ops++;
      await inner.pushBlob(d, body, o);
    },
    fetchBlob: async (d, o) => {
      ops++;
      return inner.fetchBlob(d, o);
    },
  };
  const before = count();
  await timed(
    `${label}: push ${BLOBS} x 1 MiB blobs`,
    size,
    () => count() - before,
    () =>
      pool(BLOBS, async (i) => {
        await store.pushBlob(descriptors[i]!, blob(i));
      }),
  );
  const middle = count();
  await timed(
    `${label}: fetch ${BLOBS} x 1 MiB blobs (verified)`,
    size,
    () => count() - middle,
    () =>
      pool(BLOBS, async (i) => {
        const n = await drain(await store.fetchBlob(descriptors[i]!));
        if (n !== MiB) throw new Error(`blob ${i}: ${n} bytes`);
      }),
  );
}

async function main(): Promise<void> {
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const work = await mkdtemp(join(tmpdir(), 'tc-oci-bench-'));
  const registry = await startRegistry({ mode: 'anonymous' });
  try {
    await benchCurl(registry.baseUrl, work);
    // NOTE: a counting interceptor on the client's keep-alive Agent counts every HTTP request
    // the client really makes (existence checks and retries included).
    let httpRequests = 0;
    const agent = new Agent({ keepAliveTimeout: 30_000 });
    const dispatcher = agent.compose(
      (dispatch: Dispatcher['dispatch']): Dispatcher['dispatch'] =>
        (options, handler) => {
          httpRequests++;
          return dispatch(options, handler);
        },
    );
    const store = createOciBackend({
      url: registry.ociUrl('bench/client'),
      dispatcher,
      authFiles: null,
      env: {},
      maxConcurrentTransfers: CONCURRENCY,
    });
    try {
      await benchStore('registry client', store, () => httpRequests);
    } finally {
      await store.close();
      await agent.close();
    }
    for (const fsync of [true, false]) {
      const dir = join(work, `layout-${fsync}`);
      await benchStore(`layout store (fsync ${fsync ? 'on' : 'off'})`, createLayoutStore(dir, { fsync }));
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await registry.close();
    await rm(work, { recursive: true, force: true });
  }

  console.log(
    `\nNode ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average at start ${loadBefore}, at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, ${new Date().toISOString()}`,
  );
  console.log(`Payload ${BLOBS} MiB; blob transfers ${CONCURRENCY} at a time.\n`);
  console.log('| Operation | MB/s | MiB/s | requests/s (layout: blob ops/s) | requests | seconds |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const rps =
      r.requests === undefined
        ? 'n/a'
        : (r.requests / r.seconds).toFixed(r.requests / r.seconds < 10 ? 1 : 0);
    console.log(
      `| ${r.name} | ${(r.bytes / 1e6 / r.seconds).toFixed(1)} | ${(r.bytes / MiB / r.seconds).toFixed(1)} | ${rps} | ${r.requests ?? 'n/a'} | ${r.seconds.toFixed(2)} |`,
    );
  }
  console.log(
    `\n${JSON.stringify({ node: process.version, blobs: BLOBS, concurrency: CONCURRENCY, results })}`,
  );
}

await main();
