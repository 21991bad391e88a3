/**
 * Checks the published form of the packages (issue 13): packs chunker, oci, lock and core with
 * `pnpm pack`, installs the packed core and its packed workspace dependencies into an empty project with
 * npm, and asserts there:
 *
 * 1. `npm ls ioredis` finds none and no `node_modules/ioredis` exists;
 * 2. a default `createCache().run()` saves then restores, loading no module of ioredis;
 * 3. without ioredis, `@task-cache/lock/redis` rejects with a typed `LockConfigError` (reason
 *    `dependency`, naming `npm i ioredis`), and a `redis://` lock is a `MISSING_DEPENDENCY` warning;
 * 4. after `npm i ioredis`, a `redis://` lock works against a real redis-server (testkit's `startRedis`),
 *    both with `connectLock` and as `createCache({ lock })`;
 * 5. the CLI (issue 21's acceptance): the packed `@task-cache/cli` installed into an empty directory,
 *    `npx task-cache run --task lint …` twice — the second replays `linting`, prints
 *    `task: "lint" restored from cache`, exits 0 and `out/x` is the first run's.
 *
 * Needs `pnpm build` first (it packs `dist/`) and the npm registry for the third-party dependencies.
 * Run by `scripts/check-packed.sh` (from `.ci/run`).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startRedis } from '@task-cache/testkit';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['chunker', 'oci', 'lock', 'core'];
const started = performance.now();
const step = (what: string) =>
  console.log(`check-packed: ${what} (${((performance.now() - started) / 1000).toFixed(1)} s)`);

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check-packed: FAILED: ${message}`);
}

/** Runs `script` (an ES module) with node in the app directory; returns its last stdout line as JSON. */
async function node(app: string, name: string, script: string, env: Record<string, string> = {}) {
  await writeFile(join(app, name), script);
  try {
    const { stdout } = await run(process.execPath, [name], {
      cwd: app,
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`check-packed: ${name} failed:\n${e.stdout ?? ''}\n${e.stderr ?? ''}`, { cause: error });
  }
}

const work = await mkdtemp(join(tmpdir(), 'tc-check-packed-'));
const redis = await startRedis();
try {
  for (const p of PACKAGES) {
    check(
      existsSync(join(ROOT, 'packages', p, 'dist', 'index.js')),
      `packages/${p}/dist is missing: run pnpm build`,
    );
  }
  const tarballs = join(work, 'tarballs');
  await mkdir(tarballs);
  for (const p of PACKAGES) {
    await run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(ROOT, 'packages', p) });
  }
  const files = (await readdir(tarballs)).map((f) => join(tarballs, f));
  check(files.length === PACKAGES.length, `expected ${PACKAGES.length} tarballs, got ${files.join(', ')}`);
  step(`packed ${files.length} packages`);

  const app = join(work, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const npm = (...args: string[]) => run('npm', [...args, '--no-audit', '--no-fund'], { cwd: app });
  await npm('install', ...files);
  step('installed the packed core and its packed workspace dependencies with npm');

  // 1. No ioredis anywhere in the tree (`npm ls` exits 1 when it finds nothing).
  const ls = await run('npm', ['ls', 'ioredis', '--all', '--json'], { cwd: app }).catch(
    (error: { stdout?: string }) => ({ stdout: error.stdout ?? '{}' }),
  );
  check(
    !JSON.stringify(JSON.parse(ls.stdout)).includes('"ioredis"'),
    `npm ls ioredis found it: ${ls.stdout}`,
  );
  check(!existsSync(join(app, 'node_modules', 'ioredis')), 'node_modules/ioredis exists');
  step('npm ls ioredis: none');

  // 2 + 3. A default run, then the Redis subpath and a redis:// lock without ioredis.
  const env = {
    TASK_CACHE_DIR: join(work, 'cache'),
    HOME: join(work, 'home'),
    XDG_CACHE_HOME: join(work, 'xdg'),
  };
  const without = await node(
    app,
    'default-run.mjs',
    `
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createCache } from '@task-cache/core';
import { LockConfigError } from '@task-cache/lock';

const dir = join(process.cwd(), 'project');
await mkdir(join(dir, 'src'), { recursive: true });
await writeFile(join(dir, 'src', 'main.c'), 'int main(void) { return 0; }\\n');
const task = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
const build = async () => {
  await mkdir(join(dir, 'dist'), { recursive: true });
  await writeFile(join(dir, 'dist', 'out.txt'), 'built\\n');
};
const cache = createCache();
const first = await cache.run(task, build);
const second = await cache.run(task, build);
await cache.close();
const ioredisLoaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => /[\\\\/]ioredis[\\\\/]/.test(p));

let subpath;
try {
  await import('@task-cache/lock/redis');
  subpath = 'loaded';
} catch (error) {
  subpath = { typed: error instanceof LockConfigError, reason: error.reason, message: error.message };
}
const warnings = [];
const redisCache = createCache({ lock: 'redis://:pw@127.0.0.1:1/k', onEvent: (e) => e.type === 'warning' && warnings.push(e) });
await writeFile(join(dir, 'src', 'main.c'), 'changed\\n');
const third = await redisCache.run(task, build);
await redisCache.close();
console.log(JSON.stringify({ first: first.status, second: second.status, ioredisLoaded, subpath, third: third.status, warnings }));
`,
    env,
  );
  check(
    without.first === 'saved' && without.second === 'restored',
    `default run: ${JSON.stringify(without)}`,
  );
  check((without.ioredisLoaded as string[]).length === 0, `ioredis was loaded: ${JSON.stringify(without)}`);
  const subpath = without.subpath as { typed?: boolean; reason?: string; message?: string };
  check(
    subpath.typed === true && subpath.reason === 'dependency' && subpath.message?.includes('npm i ioredis'),
    `@task-cache/lock/redis without ioredis: ${JSON.stringify(subpath)}`,
  );
  const warnings = without.warnings as Array<{ code: string; causeCode?: string }>;
  check(
    without.third === 'saved' &&
      warnings.some((w) => w.code === 'LOCK_UNAVAILABLE' && w.causeCode === 'CACHE_ERR_MISSING_DEPENDENCY'),
    `redis:// lock without ioredis: ${JSON.stringify(without)}`,
  );
  step('default run saved then restored without ioredis; the Redis subpath fails typed');

  // 4. With ioredis: a redis:// lock against the real redis-server.
  await npm('install', 'ioredis@^5.8.0');
  step('npm i ioredis');
  const withRedis = await node(
    app,
    'redis-run.mjs',
    `
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCache } from '@task-cache/core';
import { connectLock } from '@task-cache/lock/redis';

const lock = await connectLock(process.env.LOCK_URL);
const outcome = await lock.acquireOrWait('lock:packed');
const released = outcome.kind === 'acquired' ? await outcome.lease.release('built') : undefined;
await lock.close();

const dir = join(process.cwd(), 'project');
await writeFile(join(dir, 'src', 'main.c'), 'with redis\\n');
const events = [];
const cache = createCache({ lock: process.env.LOCK_URL, onEvent: (e) => events.push(e.type) });
const result = await cache.run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] }, async () => {
  await mkdir(join(dir, 'dist'), { recursive: true });
  await writeFile(join(dir, 'dist', 'out.txt'), 'built with the Redis lock\\n');
});
await cache.close();
console.log(JSON.stringify({ kind: outcome.kind, released, status: result.status, events }));
`,
    { ...env, LOCK_URL: redis.url('lock:from-url') },
  );
  check(
    withRedis.kind === 'acquired' && withRedis.released === true,
    `connectLock: ${JSON.stringify(withRedis)}`,
  );
  check(
    withRedis.status === 'saved' && (withRedis.events as string[]).includes('lock-acquired'),
    `createCache({ lock: redis:// }): ${JSON.stringify(withRedis)}`,
  );
  const held = await redis.command('KEYS', '*');
  check(
    Array.isArray(held) && held.some((k) => String(k).includes('lock:from-url')),
    `no lock key seen: ${held}`,
  );
  step('redis:// lock works with ioredis installed');

  // 5. The CLI from its packed tarball, in an empty directory, as a new user would try it.
  check(
    existsSync(join(ROOT, 'packages', 'cli', 'dist', 'bin.js')),
    'packages/cli/dist is missing: run pnpm build',
  );
  const cliTarballs = join(work, 'cli-tarballs');
  await mkdir(cliTarballs);
  await run('pnpm', ['pack', '--pack-destination', cliTarballs], { cwd: join(ROOT, 'packages', 'cli') });
  const cliTarball = join(cliTarballs, (await readdir(cliTarballs))[0]!);
  const empty = join(work, 'empty');
  await mkdir(empty);
  // NOTE: chunker, oci, lock and core are not published either: their packed tarballs come along.
  await run('npm', ['install', ...files, cliTarball, '--no-audit', '--no-fund'], { cwd: empty });
  await mkdir(join(empty, 'src'));
  await writeFile(join(empty, 'src', 'a.txt'), 'lint me\n');
  const lint = () =>
    run(
      'npx',
      [
        'task-cache',
        'run',
        '--task',
        'lint',
        '--sources',
        'src/**',
        '--generates',
        'out/**',
        '--',
        'sh',
        '-c',
        'echo linting; mkdir -p out; date +%s%N > out/x',
      ],
      {
        cwd: empty,
        env: { ...process.env, ...env, TASK_CACHE_DIR: join(work, 'cli-cache') },
        timeout: 120_000,
      },
    );
  const first = await lint();
  check(first.stdout === 'linting\n', `cli first run stdout: ${JSON.stringify(first)}`);
  check(first.stderr.includes('task: "lint" saved to cache'), `cli first run: ${first.stderr}`);
  const x = await readFile(join(empty, 'out', 'x'), 'utf8');
  const second = await lint();
  check(second.stdout === 'linting\n', `cli second run stdout (replayed): ${JSON.stringify(second)}`);
  check(second.stderr.includes('task: "lint" restored from cache'), `cli second run: ${second.stderr}`);
  check(
    (await readFile(join(empty, 'out', 'x'), 'utf8')) === x,
    "cli second run: out/x is not the first run's",
  );
  step('packed @task-cache/cli: npx task-cache run twice → replayed output, restored from cache, exit 0');
  console.log('check-packed: OK');
} finally {
  await redis.stop();
  await rm(work, { recursive: true, force: true });
}
