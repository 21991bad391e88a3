/**
 * The benchmark as users deploy it (issue 15): cold save and cold restore, ours vs the naive
 * pipeline (`tar | zstd -3 -T0 | curl` and back), against
 *
 * - `anonymous`  — plain HTTP registry (the core bench's set-up),
 * - `basic`      — TLS registry with htpasswd basic auth,
 * - `token`      — TLS registry with token auth (as Harbor serves it),
 * - `token+10ms` / `token+40ms` — the token registry behind a loopback TCP proxy that delays every
 *   piece of data by half the round-trip time each way (TLS passes through it untouched; the token
 *   server is reached directly).
 *
 * Each run prints, side by side: our wall time and CPU, the baseline's wall time and CPU, the
 * registry's CPU over each, and the blobs and HTTP requests of each. One command:
 * `pnpm --filter @task-cache/core bench:deployments`.
 *
 * Env: TASK_CACHE_BENCH_DIR (corpus location), BENCH_DEPLOY_MB (corpus size, default 1024),
 * BENCH_DEPLOYMENTS (comma-separated subset of the names above, default all), BENCH_RUNS (default 1),
 * BENCH_FORMAT (the entry format version of our saves: 1 or 2, default the library's), BENCH_TRACE=1
 * (our child prints one `trace` line per HTTP request: ms since start when created, when its
 * headers came, when it ended; method, path).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type RegistryFixture, startRegistry } from '@task-cache/testkit';
import { benchRoot } from './corpus.js';

const exec = promisify(execFile);
const here = fileURLToPath(new URL('.', import.meta.url));
const MB = 1e6;
const corpusMB = Number(process.env.BENCH_DEPLOY_MB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 1);
const ALL = ['anonymous', 'basic', 'token', 'token+10ms', 'token+40ms'];
const wanted = (process.env.BENCH_DEPLOYMENTS ?? ALL.join(',')).split(',').filter(Boolean);
/** BENCH_FORMAT: the entry format version our saves write (1 or 2; default: the library's). */
const formatVersion = process.env.BENCH_FORMAT === undefined ? undefined : Number(process.env.BENCH_FORMAT);

interface Measured {
  ms: number;
  cpuMs: number;
  registryCpuMs: number;
  blobs: number;
  requests: number;
}

/** A corpus of `corpusMB` MB: 4 MiB files, alternating incompressible and text-like (deterministic). */
async function corpus(): Promise<string> {
  const dir = join(benchRoot, `deploy-${corpusMB}`);
  if (existsSync(join(dir, '.done'))) return dir;
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'dist'), { recursive: true });
  const fileBytes = 4 * 1024 * 1024;
  const files = Math.max(1, Math.round((corpusMB * MB) / fileBytes));
  for (let i = 0; i < files; i++) {
    const out = Buffer.alloc(fileBytes);
    if (i % 2 === 0) {
      for (let o = 0; o < fileBytes; o += 32) {
        createHash('sha256').update(`${i}:${o}`).digest().copy(out, o);
      }
    } else {
      const line = Buffer.from(`export const value${i} = "${'lorem ipsum dolor sit amet '.repeat(3)}";\n`);
      for (let o = 0; o < fileBytes; o += line.length) line.copy(out, o);
    }
    await writeFile(join(dir, 'dist', `f${String(i).padStart(4, '0')}.bin`), out);
  }
  await writeFile(join(dir, '.done'), '');
  return dir;
}

/** CPU time (ms) the process `pid` has used so far (Linux /proc; clock ticks of 10 ms). */
async function cpuOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
}

/** A loopback TCP proxy delaying every piece of data by `rttMs / 2` in each direction. */
async function rttProxy(
  upstreamPort: number,
  rttMs: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const delay = (from: Socket, to: Socket) => {
    // NOTE: timers of one duration fire in insertion order, so the byte order is kept.
    from.on('data', (d) => setTimeout(() => to.write(d), rttMs / 2));
    from.on('end', () => setTimeout(() => to.end(), rttMs / 2));
    from.on('error', () => to.destroy());
  };
  const server: Server = createServer((client) => {
    const up = connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(up);
    delay(client, up);
    delay(up, client);
    // NOTE: closing is delayed like the data (and ends rather than destroys), so the pieces still
    // on their way are delivered first.
    client.on('close', () => setTimeout(() => up.end(), rttMs / 2));
    up.on('close', () => setTimeout(() => client.end(), rttMs / 2));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function child(
  args: Record<string, unknown>,
): Promise<{ ms: number; cpuMs: number; requests: number; result: Record<string, number> }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(here, 'child.mjs'), JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`child exited with ${code}: ${out}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}'));
    });
  });
}

/** Runs a bash script under GNU time: wall ms, CPU of all its processes, stdout. */
async function shell(script: string): Promise<{ ms: number; cpuMs: number; stdout: string }> {
  const t = performance.now();
  const { stdout, stderr } = await exec(
    '/usr/bin/time',
    ['-f', 'CPU=%U+%S', 'bash', '-o', 'pipefail', '-c', script],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const cpu = /CPU=([\d.]+)\+([\d.]+)/.exec(stderr);
  return { ms: performance.now() - t, cpuMs: cpu ? (Number(cpu[1]) + Number(cpu[2])) * 1000 : 0, stdout };
}

const lines: string[] = [];
const say = (s: string) => {
  console.log(s);
  lines.push(s);
};
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const fmt = (m: Measured) =>
  `wall ${secs(m.ms)}, CPU ${secs(m.cpuMs)}, registry CPU ${secs(m.registryCpuMs)}, ${m.blobs} blobs, ${m.requests} requests`;

const dir = await corpus();
const { stdout: du } = await exec('du', ['-sb', join(dir, 'dist')]);
const bytes = Number(du.split('\t')[0]);
const scratch = join(benchRoot, 'deploy-scratch');
await rm(scratch, { recursive: true, force: true });
await mkdir(scratch, { recursive: true });
say(
  `# deployments bench — Node ${process.version}, ${new Date().toISOString()}, ${availableParallelism()} CPUs, loadavg ${loadavg()
    .map((l) => l.toFixed(1))
    .join(
      ' ',
    )}, ${(bytes / MB).toFixed(0)} MB corpus, ${runs} run(s), entry format ${formatVersion ?? 'default'}`,
);

const registries = new Map<string, RegistryFixture>();
async function registryFor(mode: 'anonymous' | 'htpasswd' | 'token'): Promise<RegistryFixture> {
  let reg = registries.get(mode);
  if (!reg) {
    reg = await startRegistry({ mode, ...(mode === 'token' ? { tokenTtlSeconds: 3600 } : {}) });
    registries.set(mode, reg);
  }
  return reg;
}

try {
  for (const name of wanted) {
    const [kind, rttText] = name.split('+');
    const mode = kind === 'basic' ? 'htpasswd' : kind === 'token' ? 'token' : 'anonymous';
    const reg = await registryFor(mode);
    const rtt = rttText ? Number.parseInt(rttText, 10) : 0;
    const proxy = rtt > 0 ? await rttProxy(Number(reg.host.split(':')[1]), rtt) : undefined;
    const host = proxy ? `127.0.0.1:${proxy.port}` : reg.host;
    const tls = mode !== 'anonymous';
    const base = `${tls ? 'https' : 'http'}://${host}`;
    const env: Record<string, string> = tls
      ? {
          TASK_CACHE_OCI_USER: reg.username,
          TASK_CACHE_OCI_PASSWORD: reg.password,
          TASK_CACHE_OCI_CA: reg.caFile!,
        }
      : {};
    const query = tls ? '' : '?plain-http=true';
    try {
      for (let r = 0; r < runs; r++) {
        const repo = `bench/${kind}-${rtt}-${Date.now()}-${r}`;
        // curl's auth: none, basic, or a bearer token fetched once (as a script would).
        const curlAuth = async (scope: string): Promise<{ args: string; requests: number }> => {
          const ca = tls ? `--cacert ${reg.caFile}` : '';
          const user = `${reg.username}:${reg.password}`.replace(/'/g, `'\\''`);
          if (mode === 'anonymous') return { args: '', requests: 0 };
          if (mode === 'htpasswd') return { args: `${ca} -u '${user}'`, requests: 0 };
          const realm = `${reg.tokenServer!.url}?service=${encodeURIComponent(reg.service!)}&scope=${encodeURIComponent(scope)}`;
          const { stdout } = await shell(`curl -sS -f ${ca} -u '${user}' '${realm}'`);
          const token = /"(?:access_)?token"\s*:\s*"([^"]+)"/.exec(stdout)?.[1];
          return { args: `${ca} -H 'Authorization: Bearer ${token}'`, requests: 1 };
        };
        // --- cold save ---
        const auth = await curlAuth(`repository:${repo}:pull,push`);
        let reg0 = await cpuOf(reg.pid);
        const b = await shell(
          [
            'set -e',
            `loc=$(curl -sS -f ${auth.args} -D - -o /dev/null -X POST ${base}/v2/${repo}/blobs/uploads/ | tr -d '\\r' | awk 'tolower($1)=="location:"{print $2}')`,
            `case "$loc" in http*) ;; *) loc="${base}$loc";; esac`,
            `tar -C ${dir} -cf - dist | zstd -3 -T0 -q | tee >(sha256sum | cut -d" " -f1 > ${scratch}/digest) | curl -sS -f ${auth.args} -X PATCH -H 'Content-Type: application/octet-stream' -T - "$loc" -D ${scratch}/patch.h -o /dev/null`,
            `loc2=$(tr -d '\\r' < ${scratch}/patch.h | awk 'tolower($1)=="location:"{print $2}')`,
            `case "$loc2" in http*) ;; *) loc2="${base}$loc2";; esac`,
            'sleep 0.05',
            `curl -sS -f ${auth.args} -X PUT "$loc2&digest=sha256:$(cat ${scratch}/digest)" -o /dev/null`,
            `echo sha256:$(cat ${scratch}/digest)`,
          ].join('\n'),
        );
        const blobDigest = b.stdout.trim().split('\n').at(-1) ?? '';
        let reg1 = await cpuOf(reg.pid);
        const baseSave: Measured = {
          ms: b.ms,
          cpuMs: b.cpuMs,
          registryCpuMs: reg1 - reg0,
          blobs: 1,
          requests: 3 + auth.requests,
        };
        const url = `oci://${host}/${repo}:cold${query}`;
        const c = await child({
          op: 'save',
          dir,
          url,
          tag: 'cold',
          task: `deploy-${kind}`,
          env,
          ...(formatVersion !== undefined ? { extra: { formatVersion } } : {}),
        });
        const oursSave: Measured = {
          ms: c.ms,
          cpuMs: c.cpuMs,
          registryCpuMs: (await cpuOf(reg.pid)) - reg1,
          blobs: c.result.blobsTotal ?? c.result.chunksTotal ?? 0,
          requests: c.requests,
        };
        say(
          `${name} cold save     ours: ${fmt(oursSave)}  |  baseline: ${fmt(baseSave)}  →  speed ratio ${(baseSave.ms / oursSave.ms).toFixed(2)}, CPU ratio ${(oursSave.cpuMs / baseSave.cpuMs).toFixed(2)}`,
        );
        // --- cold restore ---
        const pull = await curlAuth(`repository:${repo}:pull`);
        const out1 = join(scratch, 'restore-base');
        await mkdir(out1, { recursive: true });
        reg0 = await cpuOf(reg.pid);
        const rb = await shell(
          `curl -sS -f -L ${pull.args} ${base}/v2/${repo}/blobs/${blobDigest} | zstd -d -q | tar -C ${out1} -xf -`,
        );
        reg1 = await cpuOf(reg.pid);
        const baseRestore: Measured = {
          ms: rb.ms,
          cpuMs: rb.cpuMs,
          registryCpuMs: reg1 - reg0,
          blobs: 1,
          requests: 1 + pull.requests,
        };
        await rm(out1, { recursive: true, force: true });
        const out2 = join(scratch, 'restore-ours');
        await mkdir(out2, { recursive: true });
        const rc = await child({ op: 'restore', dir: out2, url, tag: 'cold', env });
        const oursRestore: Measured = {
          ms: rc.ms,
          cpuMs: rc.cpuMs,
          registryCpuMs: (await cpuOf(reg.pid)) - reg1,
          blobs: oursSave.blobs,
          requests: rc.requests,
        };
        await rm(out2, { recursive: true, force: true });
        say(
          `${name} cold restore  ours: ${fmt(oursRestore)}  |  baseline: ${fmt(baseRestore)}  →  speed ratio ${(baseRestore.ms / oursRestore.ms).toFixed(2)}, CPU ratio ${(oursRestore.cpuMs / baseRestore.cpuMs).toFixed(2)}`,
        );
      }
    } finally {
      await proxy?.close();
    }
  }
} finally {
  for (const reg of registries.values()) await reg.close();
  await rm(scratch, { recursive: true, force: true });
}
await appendFile(join(benchRoot, 'results.md'), `${lines.join('\n')}\n\n`);
console.log(`(appended to ${join(benchRoot, 'results.md')})`);
