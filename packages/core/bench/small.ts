/**
 * The small-task benchmark (issue 14): `pnpm --filter @task-cache/core bench:small`. Whole
 * processes, medians of BENCH_RUNS (default 7) runs, each figure beside its baseline in the same
 * run (A and B alternate, so drift of a shared machine hits both):
 *
 * 1. `import('@task-cache/core')` time (a fresh `node` each run);
 * 2. fresh-process hit through the example runner (`task build`, embedded default store), outputs
 *    removed (a restore) and outputs in place (up to date), vs `node -e 0` + `tar -xf`;
 * 3. the same hit in an already-running process (`cache.run` again), vs `tar -xf`;
 * 4. fresh-process miss + save vs `node -e 0` + the build + `tar -cf`.
 *
 * Two projects: 3 files / 2 kB and 200 files / 2 MB. The registry hit's requests are counted by
 * src/run/registry-hit.integration.test.ts (3 after the token). Env: BENCH_RUNS.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const runs = Number(process.env.BENCH_RUNS ?? 7);
const here = fileURLToPath(new URL('.', import.meta.url));
const taskBin = fileURLToPath(
  new URL('../../../examples/taskfile/bin/task-cache-taskfile.mjs', import.meta.url),
);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Wall and CPU (user + sys) milliseconds of one shell script run under GNU time. */
async function timed(script: string, env: NodeJS.ProcessEnv): Promise<{ wall: number; cpu: number }> {
  const t = performance.now();
  const { stderr } = await exec('/usr/bin/time', ['-f', 'CPU=%U+%S', 'sh', '-c', script], { env });
  const wall = performance.now() - t;
  const m = /CPU=([\d.]+)\+([\d.]+)/.exec(stderr);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : 0 };
}

/** A and B alternately, `runs` times each, `prepare` before each; medians. */
async function pair(
  prepare: string,
  a: string,
  b: string,
  env: NodeJS.ProcessEnv,
): Promise<{ a: { wall: number; cpu: number }; b: { wall: number; cpu: number } }> {
  const ra: Array<{ wall: number; cpu: number }> = [];
  const rb: Array<{ wall: number; cpu: number }> = [];
  for (let i = 0; i < runs + 1; i++) {
    await exec('sh', ['-c', prepare], { env });
    const x = await timed(a, env);
    await exec('sh', ['-c', prepare], { env });
    const y = await timed(b, env);
    if (i === 0) continue; // warm-up
    ra.push(x);
    rb.push(y);
  }
  const med = (r: typeof ra) => ({ wall: median(r.map((x) => x.wall)), cpu: median(r.map((x) => x.cpu)) });
  return { a: med(ra), b: med(rb) };
}

const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;
const row = (
  what: string,
  a: { wall: number; cpu: number },
  b: { wall: number; cpu: number },
  base: string,
) =>
  `| ${what} | ${ms(a.wall)} | ${ms(a.cpu)} | ${base}: ${ms(b.wall)} | ${ms(b.cpu)} | ${(a.wall / b.wall).toFixed(2)}× |`;

async function project(root: string, name: string, files: number, bytes: number): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await mkdir(join(dir, 'gen'), { recursive: true });
  await writeFile(join(dir, 'src', 'main.js'), `console.log(${JSON.stringify(name)});\n`);
  const per = Math.floor(bytes / files);
  let seed = files;
  for (let i = 0; i < files; i++) {
    const b = Buffer.alloc(per);
    for (let j = 0; j < per; j++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      b[j] = 32 + (seed % 64);
    }
    await writeFile(join(dir, 'gen', `f${String(i).padStart(3, '0')}.txt`), b);
  }
  await writeFile(
    join(dir, 'Taskfile.yml'),
    [
      "version: '3'",
      'tasks:',
      '  build:',
      '    sources:',
      '      - src/**',
      '    generates:',
      '      - dist/**',
      '    cache:',
      '      enabled: true',
      '    cmds:',
      '      - mkdir -p dist && cp -R gen/. dist/',
      '',
    ].join('\n'),
  );
  execFileSync('sh', ['-c', 'mkdir -p dist && cp -R gen/. dist/ && tar -cf ../' + name + '.tar dist'], {
    cwd: dir,
  });
  return dir;
}

const root = await mkdtemp(join(tmpdir(), 'tc-bench-small-'));
const cacheDir = join(root, 'cache');
const env = { ...process.env, TASK_CACHE_DIR: cacheDir, HOME: join(root, 'home') };
const lines: string[] = [];
const say = (s: string) => {
  console.log(s);
  lines.push(s);
};
try {
  say(
    `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at start; medians of ${runs} runs (after one warm-up), A and B alternating`,
  );
  const imports: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { stdout } = await exec(process.execPath, [join(here, 'small-child.mjs'), 'import'], { env });
    imports.push((JSON.parse(stdout) as { importMs: number }).importMs);
  }
  say(`\nimport('@task-cache/core'): ${ms(median(imports))} (median of ${runs} fresh processes)\n`);
  say('| scenario | wall | CPU | baseline | wall | CPU | ratio (wall) |');
  say('|---|---|---|---|---|---|---|');
  for (const [name, files, bytes] of [
    ['small-3', 3, 2_000],
    ['small-200', 200, 2_000_000],
  ] as const) {
    const dir = await project(root, name, files, bytes);
    const tar = join(root, `${name}.tar`);
    const label = `${files} files / ${bytes >= 1e6 ? `${bytes / 1e6} MB` : `${bytes / 1e3} kB`}`;
    const task = `node ${taskBin} --dir ${dir} build >/dev/null 2>&1`;
    const node0 = `node -e 0 && tar -xf ${tar} -C ${dir}`;
    // Miss + save: an empty cache each time.
    const miss = await pair(
      `rm -rf ${cacheDir} ${dir}/dist ${dir}/.task`,
      task,
      `node -e 0 && cd ${dir} && mkdir -p dist && cp -R gen/. dist/ && tar -cf ${root}/save.tar dist`,
      env,
    );
    say(row(`fresh process, miss + save, ${label}`, miss.a, miss.b, 'node -e 0 + build + tar -cf'));
    // Leave one entry in the cache for the hits.
    await exec('sh', ['-c', `rm -rf ${cacheDir} ${dir}/dist ${dir}/.task && ${task}`], { env });
    const hit = await pair(`rm -rf ${dir}/dist ${dir}/.task`, task, node0, env);
    say(row(`fresh process hit (restore), ${label}`, hit.a, hit.b, 'node -e 0 + tar -xf'));
    // NOTE: the baseline extracts elsewhere here: extracting over the outputs would change them, and
    // the next run would rightly restore instead of finding them up to date.
    const fresh = await pair(
      `rm -rf ${dir}/.task`,
      task,
      `mkdir -p ${root}/scratch && node -e 0 && tar -xf ${tar} -C ${root}/scratch`,
      env,
    );
    say(row(`fresh process hit, outputs up to date, ${label}`, fresh.a, fresh.b, 'node -e 0 + tar -xf'));
    const { stdout } = await exec(
      process.execPath,
      [join(here, 'small-child.mjs'), 'inproc', dir, tar, String(runs)],
      {
        env,
      },
    );
    const r = JSON.parse(stdout) as { restoreMs: number; upToDateMs: number; tarMs: number };
    say(
      `| in-process hit (restore), ${label} | ${ms(r.restoreMs)} | | tar -xf: ${ms(r.tarMs)} | | ${(r.restoreMs / r.tarMs).toFixed(2)}× |`,
    );
    say(
      `| in-process hit, up to date, ${label} | ${ms(r.upToDateMs)} | | tar -xf: ${ms(r.tarMs)} | | ${(r.upToDateMs / r.tarMs).toFixed(2)}× |`,
    );
  }
  say(
    `\nload average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
} finally {
  await rm(root, { recursive: true, force: true });
}
