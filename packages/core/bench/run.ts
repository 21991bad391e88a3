/**
 * The core benchmark (issue 7), one command: `pnpm --filter @task-cache/core bench`.
 * Generates the corpora once (bench/corpus.ts), starts a local registry (CNCF distribution via
 * @task-cache/testkit, anonymous, loopback) and prints each figure beside its baseline:
 *
 * 1. cold save   vs `tar -c | zstd -3 -T0 | curl` (one blob: POST, streamed PATCH, PUT ?digest)
 * 2. warm save after changing one small file: bytes pushed, time (vs the cold save)
 * 3. cold restore vs `curl | zstd -d | tar -x`
 * 4. 20 000 × 4 KiB files: pack rate (list + tar + FastCDC + sha256) vs GNU tar
 * 5. peak RSS of each of our runs (each runs in a fresh child process)
 *
 * Env: TASK_CACHE_BENCH_DIR (corpus location; tmpfs takes the disk out), BENCH_RUNS (default 2),
 * BENCH_PROFILE=1 (writes `--cpu-prof` profiles of our save and restore to <bench dir>/profiles),
 * BENCH_FORMAT (the entry format version of our saves: 1 or 2, default the library's).
 */
import { execFile, spawn } from 'node:child_process';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startRegistry } from '@task-cache/testkit';
import { hasNodeZstd, ZSTD_CODEC_MAX_CHUNK } from '../src/internal/zstd.js';
import { benchRoot, CHANGED_FILE, mixedCorpus, smallCorpus } from './corpus.js';

const exec = promisify(execFile);
const here = fileURLToPath(new URL('.', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 2);
const profile = process.env.BENCH_PROFILE === '1';
/** BENCH_FORMAT: the entry format version our saves write (1 or 2; default: the library's). */
const formatVersion = process.env.BENCH_FORMAT === undefined ? undefined : Number(process.env.BENCH_FORMAT);
const MB = 1e6;

interface ChildResult {
  result: Record<string, number>;
  ms: number;
  maxRssBytes: number;
  cpuMs: number;
}

async function child(args: Record<string, unknown>, label: string): Promise<ChildResult> {
  if (args.op === 'save' && formatVersion !== undefined)
    args = { ...args, extra: { ...(args.extra as object | undefined), formatVersion } };
  // NOTE: plain `node child.mjs` (no TypeScript loader in the measured process), so that peak
  // RSS is the package's own and --cpu-prof profiles the measured process and its worker threads.
  const nodeArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${join(benchRoot, 'profiles', label)}`] : [];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs, join(here, 'child.mjs'), JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        TSX_TSCONFIG_PATH: fileURLToPath(new URL('../../../tsconfig.json', import.meta.url)),
      },
    });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${label}: child exited with ${code}: ${out}`));
      const line = out.trim().split('\n').at(-1) ?? '';
      resolve(JSON.parse(line) as ChildResult);
    });
  });
}

/**
 * Runs a shell pipeline under GNU time; wall ms, the peak RSS of its largest process and the
 * CPU time of all its processes.
 */
async function shell(
  script: string,
): Promise<{ ms: number; maxRssBytes: number; cpuMs: number; stdout: string }> {
  const t = performance.now();
  const { stdout, stderr } = await exec(
    '/usr/bin/time',
    ['-f', 'RSSKB=%M CPU=%U+%S', 'bash', '-o', 'pipefail', '-c', script],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const ms = performance.now() - t;
  const rss = Number(/RSSKB=(\d+)/.exec(stderr)?.[1] ?? 0) * 1024;
  const cpu = /CPU=([\d.]+)\+([\d.]+)/.exec(stderr);
  const cpuMs = cpu ? (Number(cpu[1]) + Number(cpu[2])) * 1000 : 0;
  return { ms, maxRssBytes: rss, cpuMs, stdout };
}

/** CPU time (user + system, ms) the registry process has used so far (Linux /proc). */
async function registryCpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime (fields 14 and 15 of proc(5)), in clock ticks of 10 ms.
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
}
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
/** CPU times (ms) of each run: ours and the baseline, each with the registry's over the same interval. */
const cpuRecord = () => ({
  base: [] as number[],
  baseReg: [] as number[],
  ours: [] as number[],
  oursReg: [] as number[],
});

const fmtMB = (b: number) => `${(b / MB).toFixed(1)} MB`;
const rate = (bytes: number, ms: number) => `${(bytes / MB / (ms / 1000)).toFixed(0)} MB/s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const lines: string[] = [];
const say = (s: string) => {
  console.log(s);
  lines.push(s);
};

const mixed = await mixedCorpus((s) => console.log(s));
const small = await smallCorpus((s) => console.log(s));
const { stdout: duOut } = await exec('du', ['-sb', join(mixed, 'dist')]);
const corpusBytes = Number(duOut.split('\t')[0]);
const { stdout: fsOut } = await exec('stat', ['-f', '-c', '%T', mixed]);

say(
  `# @task-cache/core bench — Node ${process.version}, ${new Date().toISOString()}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? '?'}), loadavg ${loadavg()
    .map((l) => l.toFixed(1))
    .join(
      ' ',
    )}, corpus on ${fsOut.trim()} (${benchRoot}), ${fmtMB(corpusBytes)} of files, ${runs} run(s) each (median), entry format ${formatVersion ?? 'default'}`,
);

const reg = await startRegistry({ mode: 'anonymous' });
/** Shell lines opening an upload session in `repo`; its absolute URL ends up in `$loc`. */
const startUpload = (repo: string) => [
  `loc=$(curl -sS -D - -o /dev/null -X POST ${reg.baseUrl}/v2/${repo}/blobs/uploads/ | tr -d '\\r' | awk 'tolower($1)=="location:"{print $2}')`,
  `case "$loc" in http*) ;; *) loc="${reg.baseUrl}$loc";; esac`,
];
const scratch = join(benchRoot, 'scratch');
try {
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });

  // --- 1. cold save vs tar | zstd | curl ---
  const base = [];
  const ours = [];
  const oursRss = [];
  const cpu = cpuRecord();
  for (let r = 0; r < runs; r++) {
    const reg0 = await registryCpuMs(reg.pid);
    const repo = `bench/baseline-${Date.now()}-${r}`;
    const b = await shell(
      [
        'set -e',
        ...startUpload(repo),
        `tar -C ${mixed} -cf - dist | zstd -3 -T0 -q | tee >(sha256sum | cut -d" " -f1 > ${scratch}/digest) | curl -sS -f -X PATCH -H 'Content-Type: application/octet-stream' -T - "$loc" -D ${scratch}/patch.h -o /dev/null`,
        `loc2=$(tr -d '\\r' < ${scratch}/patch.h | awk 'tolower($1)=="location:"{print $2}')`,
        `case "$loc2" in http*) ;; *) loc2="${reg.baseUrl}$loc2";; esac`,
        'sleep 0.05',
        `curl -sS -f -X PUT "$loc2&digest=sha256:$(cat ${scratch}/digest)" -o /dev/null`,
        `echo "${repo} sha256:$(cat ${scratch}/digest)"`,
      ].join('\n'),
    );
    base.push(b.ms);
    cpu.base.push(b.cpuMs);
    const reg1 = await registryCpuMs(reg.pid);
    cpu.baseReg.push(reg1 - reg0);
    const c = await child(
      {
        op: 'save',
        dir: mixed,
        url: `oci://${reg.host}/bench/cold-${Date.now()}-${r}:cold?plain-http=true`,
        tag: 'cold',
        task: `bench-${r}`,
      },
      `save-cold-${r}`,
    );
    ours.push(c.ms);
    oursRss.push(c.maxRssBytes);
    cpu.ours.push(c.cpuMs);
    cpu.oursReg.push((await registryCpuMs(reg.pid)) - reg1);
  }
  const baseMs = median(base);
  const coldMs = median(ours);
  say(
    `cold save:    ours ${coldMs.toFixed(0)} ms (${rate(corpusBytes, coldMs)}, peak RSS ${fmtMB(median(oursRss))})  |  baseline tar|zstd -3 -T0|curl ${baseMs.toFixed(0)} ms (${rate(corpusBytes, baseMs)})  →  ratio ${(baseMs / coldMs).toFixed(2)}`,
  );
  say(
    `  CPU time:   ours ${secs(median(cpu.ours))} + registry ${secs(median(cpu.oursReg))}  |  baseline ${secs(median(cpu.base))} + registry ${secs(median(cpu.baseReg))}  (2 cores: wall ≥ total / 2)`,
  );
  if (!hasNodeZstd()) {
    say(
      `  same save with avgChunkSize 4 MiB: n/a on Node ${process.version} (zstd-codec holds at most ${ZSTD_CODEC_MAX_CHUNK / 1024 / 1024} MiB chunks)`,
    );
  } else {
    // The registry's cost is per blob: the same save with 4 MiB chunks (a quarter of the blobs)
    // shows how much of the gap it is. Not the default (see docs/benchmarks.md).
    const reg0 = await registryCpuMs(reg.pid);
    const c = await child(
      {
        op: 'save',
        dir: mixed,
        url: `oci://${reg.host}/bench/cold4m-${Date.now()}:cold?plain-http=true`,
        tag: 'cold',
        task: 'bench-4m',
        extra: { avgChunkSize: 4 * 1024 * 1024 },
      },
      'save-cold-4m',
    );
    const regMs = (await registryCpuMs(reg.pid)) - reg0;
    say(
      `  same save with avgChunkSize 4 MiB: ${c.ms.toFixed(0)} ms (${c.result.chunksTotal} chunks, peak RSS ${fmtMB(c.maxRssBytes)}), CPU ours ${secs(c.cpuMs)} + registry ${secs(regMs)}  →  ratio ${(baseMs / c.ms).toFixed(2)}`,
    );
  }

  // --- 2. warm save after changing one file ---
  const repo = `bench/warm-${Date.now()}`;
  const url = (tag: string) => `oci://${reg.host}/${repo}:${tag}?plain-http=true`;
  const first = await child(
    { op: 'save', dir: mixed, url: url('v1'), tag: 'v1', task: 'bench-warm' },
    'save-warm-first',
  );
  const changed = join(mixed, CHANGED_FILE);
  const original = await (await import('node:fs/promises')).readFile(changed);
  await writeFile(
    changed,
    Buffer.concat([original, Buffer.from('\n// changed by the warm-save benchmark\n')]),
  );
  let warm: ChildResult;
  try {
    warm = await child(
      { op: 'save', dir: mixed, url: url('v2'), tag: 'v2', task: 'bench-warm' },
      'save-warm',
    );
  } finally {
    await writeFile(changed, original);
  }
  say(
    `warm save:    ours ${warm.ms.toFixed(0)} ms, pushed ${warm.result.chunksPushed}/${warm.result.chunksTotal} chunks, ${fmtMB(warm.result.bytesPushed ?? 0)} = ${((100 * (warm.result.bytesPushed ?? 0)) / (first.result.bytesPushed || 1)).toFixed(2)} % of the cold push (${fmtMB(first.result.bytesPushed ?? 0)}), ${((100 * warm.ms) / first.ms).toFixed(0)} % of its cold save (${first.ms.toFixed(0)} ms); peak RSS ${fmtMB(warm.maxRssBytes)}`,
  );

  // --- 3. cold restore vs curl | zstd -d | tar -x ---
  const rBase = [];
  const rOurs = [];
  const rRss = [];
  const rCpu = cpuRecord();
  const baselineBlob = await shell(
    `tar -C ${mixed} -cf - dist | zstd -3 -T0 -q > ${scratch}/all.tar.zst && sha256sum ${scratch}/all.tar.zst | cut -d" " -f1`,
  );
  const blobDigest = `sha256:${baselineBlob.stdout.trim()}`;
  const blobRepo = `bench/blob-${Date.now()}`;
  await shell(
    [
      'set -e',
      ...startUpload(blobRepo),
      `curl -sS -f -X PUT -H 'Content-Type: application/octet-stream' -T ${scratch}/all.tar.zst "$loc&digest=${blobDigest}" -o /dev/null`,
      `rm ${scratch}/all.tar.zst`,
    ].join('\n'),
  );
  for (let r = 0; r < runs; r++) {
    const out1 = join(scratch, `restore-base-${r}`);
    await mkdir(out1, { recursive: true });
    const reg0 = await registryCpuMs(reg.pid);
    const b = await shell(
      `curl -sS -f ${reg.baseUrl}/v2/${blobRepo}/blobs/${blobDigest} | zstd -d -q | tar -C ${out1} -xf -`,
    );
    rBase.push(b.ms);
    rCpu.base.push(b.cpuMs);
    const reg1 = await registryCpuMs(reg.pid);
    rCpu.baseReg.push(reg1 - reg0);
    await rm(out1, { recursive: true, force: true });
    const out2 = join(scratch, `restore-ours-${r}`);
    await mkdir(out2, { recursive: true });
    const c = await child({ op: 'restore', dir: out2, url: url('v1'), tag: 'v1' }, `restore-${r}`);
    if (!c.result) throw new Error('restore missed');
    rOurs.push(c.ms);
    rRss.push(c.maxRssBytes);
    rCpu.ours.push(c.cpuMs);
    rCpu.oursReg.push((await registryCpuMs(reg.pid)) - reg1);
    await rm(out2, { recursive: true, force: true });
  }
  const rb = median(rBase);
  const ro = median(rOurs);
  say(
    `cold restore: ours ${ro.toFixed(0)} ms (${rate(corpusBytes, ro)}, peak RSS ${fmtMB(median(rRss))})  |  baseline curl|zstd -d|tar -x ${rb.toFixed(0)} ms (${rate(corpusBytes, rb)})  →  ratio ${(rb / ro).toFixed(2)}`,
  );
  say(
    `  CPU time:   ours ${secs(median(rCpu.ours))} + registry ${secs(median(rCpu.oursReg))}  |  baseline ${secs(median(rCpu.base))} + registry ${secs(median(rCpu.baseReg))}`,
  );

  // --- 4. pack rate: 20 000 × 4 KiB ---
  const pOurs = [];
  const pTar = [];
  let packRss = 0;
  // Both sides read from a warm page cache: the restores above wrote 2 GB, and whichever side ran
  // first would otherwise pay the disk reads alone (measured: 9 300 files/s with a cold cache).
  await shell(`sync; tar -C ${small} -cf - dist | cat > /dev/null`);
  for (let r = 0; r < runs; r++) {
    const c = await child({ op: 'pack', dir: small }, `pack-${r}`);
    pOurs.push(c.ms);
    packRss = Math.max(packRss, c.maxRssBytes);
    const t = await shell(`tar -C ${small} -cf - dist | cat > /dev/null`);
    pTar.push(t.ms);
  }
  const po = median(pOurs);
  const pt = median(pTar);
  say(
    `pack 20 000 × 4 KiB: ours ${((20_000 / po) * 1000).toFixed(0)} files/s (${po.toFixed(0)} ms: list + tar + FastCDC + sha256; peak RSS ${fmtMB(packRss)})  |  GNU tar ${((20_000 / pt) * 1000).toFixed(0)} files/s (${pt.toFixed(0)} ms)`,
  );
} finally {
  await reg.close();
  await rm(scratch, { recursive: true, force: true });
}
await appendFile(join(benchRoot, 'results.md'), `${lines.join('\n')}\n\n`);
console.log(`(appended to ${join(benchRoot, 'results.md')})`);
