/**
 * The recipes of docs/cli.md, run as written (issue 21): each block marked `<!-- recipe: NAME file=PATH -->`
 * is written into a fresh project and executed — make, npm scripts, the GitHub Actions job's `run:`
 * steps, the GitLab CI job's `script:` lines, the shell script — against the real registry (TLS with a
 * private CA, token auth, a robot account) and a password-protected redis-server. `npx task-cache`
 * finds the BUILT binary through the project's node_modules/.bin, as after `npm i -D @task-cache/cli`.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RedisFixture, type RegistryFixture, startRedis, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BIN, requireBuilt } from './helpers.js';

const DOC = fileURLToPath(new URL('../../../docs/cli.md', import.meta.url));

let reg: RegistryFixture;
let redis: RedisFixture;
let root: string;
let recipes: Map<string, { file: string; text: string }>;

beforeAll(async () => {
  requireBuilt();
  root = await mkdtemp(join(tmpdir(), 'tc-recipes-'));
  [reg, redis] = await Promise.all([startRegistry({ mode: 'token' }), startRedis()]);
  recipes = new Map();
  const doc = await readFile(DOC, 'utf8');
  for (const m of doc.matchAll(/<!-- recipe: (\S+) file=(\S+) -->\n```\w*\n([\s\S]*?)```/g))
    recipes.set(m[1]!, { file: m[2]!, text: m[3]! });
});
afterAll(async () => {
  await Promise.all([reg?.close(), redis?.stop()]);
  if (root) await rm(root, { recursive: true, force: true });
});

/** A fresh project: src/*.txt and the CLI installed as a devDependency would put it on npx's path. */
async function project(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await mkdir(join(dir, 'node_modules', '.bin'), { recursive: true });
  await writeFile(join(dir, 'src', 'a.txt'), 'alpha\n');
  // NOTE: per-project content: the GitHub and GitLab recipes name the same repository, and equal
  // inputs would (rightly) hit each other's entries.
  await writeFile(join(dir, 'src', 'b.txt'), `beta ${name}\n`);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, private: true }));
  const shim = join(dir, 'node_modules', '.bin', 'task-cache');
  await writeFile(shim, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`);
  await chmod(shim, 0o755);
  return dir;
}

/** The CI variables of the recipes (what masked variables would hold), for the repository `repo`. */
function ciEnv(repo: string, home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TASK_CACHE_DIR: join(home, 'cache'),
    npm_config_cache: join(home, 'npm-cache'),
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    TASK_CACHE_URL: `oci://${reg.host}/${repo}`,
    TASK_CACHE_LOCK_URL: redis.url(),
    TASK_CACHE_OCI_USER: reg.username,
    TASK_CACHE_OCI_PASSWORD: reg.password,
    TASK_CACHE_OCI_CA: reg.caFile!,
  };
}

function sh(script: string, cwd: string, env: Record<string, string>) {
  const child = spawn('bash', ['-e', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
}

/** Asserts what each of the build and test tasks did in one run of a recipe. */
function expectTasks(r: { code: number | null; stdout: string; stderr: string }, did: 'saved' | 'restored') {
  expect(r.code, r.stderr).toBe(0);
  const line = did === 'saved' ? 'saved to cache' : 'restored from cache';
  expect(r.stderr).toContain(`task: "build" ${line}`);
  expect(r.stderr).toContain(`task: "test" ${line}`);
  // The output is shown on a miss and replayed on a hit.
  expect(r.stdout).toContain('built');
  expect(r.stdout).toContain('tests passed');
  expect(r.stdout + r.stderr).not.toContain(reg.password);
  expect(r.stdout + r.stderr).not.toContain(redis.password!);
}

async function install(name: string, dir: string): Promise<void> {
  const recipe = recipes.get(name);
  expect(recipe, `docs/cli.md has no recipe ${name}`).toBeDefined();
  await mkdir(dirname(join(dir, recipe!.file)), { recursive: true });
  await writeFile(join(dir, recipe!.file), recipe!.text);
}

describe('docs/cli.md recipes', () => {
  it('Makefile: make test twice (saved, then restored)', async () => {
    const dir = await project('makefile');
    await install('makefile', dir);
    const env = ciEnv('task-cache/makefile', join(root, 'home-make'));
    expectTasks(await sh('make test', dir, env), 'saved');
    await rm(join(dir, 'dist'), { recursive: true });
    expectTasks(await sh('make test', dir, env), 'restored');
    expect(await readFile(join(dir, 'dist', 'app.txt'), 'utf8')).toBe(`alpha\nbeta ${basename(dir)}\n`);
  });

  it('npm scripts: npm run build && npm run test twice', async () => {
    const dir = await project('npm');
    await install('npm', dir);
    const env = ciEnv('task-cache/npm', join(root, 'home-npm'));
    expectTasks(await sh('npm run --silent build && npm run --silent test', dir, env), 'saved');
    await rm(join(dir, 'dist'), { recursive: true });
    expectTasks(await sh('npm run --silent build && npm run --silent test', dir, env), 'restored');
    expect(await readFile(join(dir, 'dist', 'app.txt'), 'utf8')).toBe(`alpha\nbeta ${basename(dir)}\n`);
  });

  it('GitHub Actions: the run: steps on a push (save), again (restore), on a pull request (read-only)', async () => {
    const dir = await project('github');
    await install('github', dir);
    const workflow = parse(recipes.get('github')!.text) as {
      jobs: { build: { env: Record<string, string>; steps: Array<{ run?: string }> } };
    };
    const job = workflow.jobs.build;
    const runnerTemp = join(root, 'runner-temp');
    await mkdir(runnerTemp, { recursive: true });
    const base = ciEnv('task-cache/github', join(root, 'home-gh'));
    const expressions = (event: string): Record<string, string> => ({
      'secrets.TASK_CACHE_LOCK_URL': base.TASK_CACHE_LOCK_URL!,
      'vars.TASK_CACHE_OCI_USER': reg.username,
      'secrets.TASK_CACHE_OCI_PASSWORD': reg.password,
      'runner.temp': runnerTemp,
      'secrets.HARBOR_CA': reg.caPem!,
      "github.event_name == 'pull_request'": String(event === 'pull_request'),
    });
    const jobEnv = (event: string) => {
      const env: Record<string, string> = { ...base, RUNNER_TEMP: runnerTemp };
      for (const [k, v] of Object.entries(job.env))
        env[k] = String(v)
          .replace(/\$\{\{ (.*?) \}\}/g, (_, e: string) => {
            const value = expressions(event)[e];
            if (value === undefined) throw new Error(`unknown expression ${e}`);
            return value;
          })
          .replace('harbor.example.com', reg.host);
      return env;
    };
    // `npm ci` installs the CLI; here it is already in node_modules/.bin.
    const steps = job.steps.flatMap((s) => (s.run && s.run.trim() !== 'npm ci' ? [s.run] : []));
    expect(steps.length).toBe(3);
    const runJob = async (event: string) => {
      let stdout = '';
      let stderr = '';
      for (const step of steps) {
        const r = await sh(step, dir, jobEnv(event));
        stdout += r.stdout;
        stderr += r.stderr;
        if (r.code !== 0) return { code: r.code, stdout, stderr };
      }
      return { code: 0, stdout, stderr };
    };
    expectTasks(await runJob('push'), 'saved');
    expect(await readFile(join(runnerTemp, 'harbor-ca.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    await rm(join(dir, 'dist'), { recursive: true });
    expectTasks(await runJob('push'), 'restored');
    // A pull request that changes a source: builds, saves nothing.
    await writeFile(join(dir, 'src', 'a.txt'), 'from a pull request\n');
    const pr = await runJob('pull_request');
    expect(pr.code, pr.stderr).toBe(0);
    expect(pr.stdout).toContain('built');
    expect(pr.stderr).not.toContain('saved to cache');
    expect(pr.stderr).not.toContain('restored from cache');
  });

  it('GitLab CI: the script: lines on a push (save), again (restore), on a merge request (read-only)', async () => {
    const dir = await project('gitlab');
    await install('gitlab', dir);
    const ci = parse(recipes.get('gitlab')!.text) as {
      build: { variables: Record<string, string>; script: string[] };
    };
    const base = ciEnv('task-cache/gitlab', join(root, 'home-gl'));
    const env = (source: string) => ({
      ...base,
      ...Object.fromEntries(
        Object.entries(ci.build.variables).map(([k, v]) => [
          k,
          String(v).replace('harbor.example.com', reg.host),
        ]),
      ),
      CI_PIPELINE_SOURCE: source,
    });
    // GitLab runs the script lines in one shell, stopping at the first failure.
    const script = ci.build.script.filter((l) => l.trim() !== 'npm ci').join('\n');
    expectTasks(await sh(script, dir, env('push')), 'saved');
    await rm(join(dir, 'dist'), { recursive: true });
    expectTasks(await sh(script, dir, env('push')), 'restored');
    await writeFile(join(dir, 'src', 'b.txt'), 'from a merge request\n');
    const mr = await sh(script, dir, env('merge_request_event'));
    expect(mr.code, mr.stderr).toBe(0);
    expect(mr.stderr).not.toContain('saved to cache');
  });

  it('shell script: ./ci-build.sh twice; without TASK_CACHE_URL it stops with the hint', async () => {
    const dir = await project('shell');
    await install('shell', dir);
    await chmod(join(dir, 'ci-build.sh'), 0o755);
    const env = ciEnv('task-cache/shell', join(root, 'home-sh'));
    expectTasks(await sh('./ci-build.sh', dir, env), 'saved');
    await rm(join(dir, 'dist'), { recursive: true });
    expectTasks(await sh('./ci-build.sh', dir, env), 'restored');
    const { TASK_CACHE_URL: _, ...without } = env;
    const r = await sh('./ci-build.sh', dir, without);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('set TASK_CACHE_URL');
  });
});
