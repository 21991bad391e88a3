/**
 * Acceptance: the operator guide's walkthrough, end to end, with the real servers — the CNCF
 * registry with TLS (private CA) and token auth standing in for Harbor, a password-protected
 * redis-server for the lock — and the guide's Taskfile verbatim except for the registry host.
 */
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checksum, formatBytes } from '@task-cache/core';
import { type RedisFixture, type RegistryFixture, startRedis, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCount, cleanEnv, GUIDE_TASKFILE, makeProject, runTask, treeDigest } from './helpers.js';

const exec = promisify(execFile);

let registry: RegistryFixture;
let redis: RedisFixture;
let certDir: string;

beforeAll(async () => {
  [registry, redis] = await Promise.all([startRegistry({ mode: 'token' }), startRedis()]);
  // skopeo's --cert-dir wants a directory of *.crt CA files.
  certDir = await mkdtemp(join(tmpdir(), 'skopeo-certs-'));
  await copyFile(registry.caFile!, join(certDir, 'ca.crt'));
});

afterAll(async () => {
  await Promise.all([registry?.close(), redis?.stop()]);
  if (certDir) await rm(certDir, { recursive: true, force: true });
});

const skopeo = async (...args: string[]) =>
  (
    await exec('skopeo', [
      args[0]!,
      '--cert-dir',
      certDir,
      '--creds',
      `${registry.username}:${registry.password}`,
      ...args.slice(1),
    ])
  ).stdout;

const redisConnections = async () =>
  Number(/total_connections_received:(\d+)/.exec(String(await redis.command('INFO', 'stats')))![1]);

describe('the guide’s walkthrough against a real registry and Redis', () => {
  it('first run builds and pushes, second run restores without building; skopeo sees the entry', async () => {
    expect(registry.username).toBe('robot$task-cache+ci');
    const dir = await makeProject(GUIDE_TASKFILE.replace('harbor.example.com', registry.host));
    const env = cleanEnv({
      TASK_CACHE_OCI_USER: registry.username,
      TASK_CACHE_OCI_PASSWORD: registry.password,
      TASK_CACHE_OCI_CA: registry.caFile,
      CI_CACHE_REDIS_URL: `:${redis.password}@127.0.0.1:${redis.port}`,
      // The cache's own files (remembered bases) and anything falling back to the embedded
      // default land here, not in the user's cache.
      TASK_CACHE_DIR: join(dir, '.default-cache'),
    });
    const tokensBefore = registry.tokenServer!.requests;
    const connectionsBefore = await redisConnections();

    // task build   # task: "build" saved to cache (pushed 42/42 chunks, 13.5 MB)
    const first = await runTask(['build'], { cwd: dir, env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.lines).toEqual([
      'task: [build] ./build.sh',
      expect.stringMatching(
        /^task: "build" saved to cache \(pushed \d+\/\d+ chunks, \d+(\.\d)? (B|kB|MB)\)$/,
      ),
    ]);
    expect(first.stdout).toBe('built\n');
    expect(await buildCount(dir)).toBe(1);
    expect(registry.tokenServer!.requests).toBeGreaterThan(tokensBefore); // token auth really happened
    // The lock went through Redis (our own INFO connections account for 1 of the difference).
    expect((await redisConnections()) - connectionsBefore).toBeGreaterThanOrEqual(2);
    const built = await treeDigest(join(dir, 'dist'));

    // The tag is the key: <urlsafe .TASK>-<.CHECKSUM>.
    const tag = `build-${await checksum({ dir, sources: ['src/**'] })}`;
    const tags = JSON.parse(await skopeo('list-tags', `docker://${registry.host}/task-cache/build`));
    // The entry's tag plus the per-task pointer tag each save moves (docs/format.md §6.1).
    expect([...tags.Tags].sort()).toEqual([tag, 'build.latest'].sort());
    const raw = await skopeo('inspect', '--raw', `docker://${registry.host}/task-cache/build:${tag}`);
    const manifest = JSON.parse(raw);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    // The default entry format, version 2 (docs/format.md §11): chunks packed into pack layers.
    expect(manifest.artifactType).toBe('application/vnd.task-cache.entry.v2');
    expect(manifest.config.mediaType).toBe('application/vnd.task-cache.entry.config.v2+json');
    const layers = manifest.layers as { mediaType: string; size: number }[];
    expect(layers.length).toBeGreaterThan(0);
    expect(new Set(layers.map((l) => l.mediaType))).toEqual(
      new Set(['application/vnd.task-cache.pack.v2+zstd']),
    );
    const config = JSON.parse(
      await skopeo('inspect', '--config', '--raw', `docker://${registry.host}/task-cache/build:${tag}`),
    ) as { formatVersion: number; chunks: { layer: number }[] };
    expect(config.formatVersion).toBe(2);
    expect(new Set(config.chunks.map((c) => c.layer))).toEqual(new Set(layers.map((_, i) => i)));
    // "pushed N/N chunks, SIZE": every chunk was new, and SIZE is what went over the wire
    // (packs + config + manifest).
    const chunks = config.chunks.length;
    const pushed = layers.reduce((n, l) => n + l.size, 0) + manifest.config.size + Buffer.byteLength(raw);
    expect(first.lines[1]).toBe(
      `task: "build" saved to cache (pushed ${chunks}/${chunks} chunks, ${formatBytes(pushed)})`,
    );

    // rm -rf dist .task; task build   # task: "build" restored from cache
    await rm(join(dir, 'dist'), { recursive: true });
    await rm(join(dir, '.task'), { recursive: true });
    const second = await runTask(['build'], { cwd: dir, env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.lines).toEqual(['task: "build" restored from cache']);
    expect(second.stdout).toBe('');
    expect(await buildCount(dir)).toBe(1);
    expect(await treeDigest(join(dir, 'dist'))).toEqual(built);

    // Nothing changed and the outputs are there: Task's own fingerprint answers, no cache call.
    const third = await runTask(['build'], { cwd: dir, env });
    expect(third.code).toBe(0);
    expect(third.lines).toEqual(['task: Task "build" is up to date']);
    expect(await buildCount(dir)).toBe(1);
  });

  it('two CI jobs at once: one builds and saves, the other waits on the Redis lock and restores', async () => {
    const taskfile = GUIDE_TASKFILE.replace('harbor.example.com', registry.host);
    // Job A's build blocks until job B is seen waiting for the lock (../release appears), so
    // the overlap does not depend on timing. builds.log is shared: it counts real builds.
    const blockingBuild =
      '#!/bin/sh\nset -eu\necho run >> ../builds.log\nwhile [ ! -f ../release ]; do sleep 0.05; done\n' +
      'mkdir -p dist\ncat src/main.js src/id.txt > dist/out.js\n';
    const root = await makeProject(taskfile, blockingBuild);
    const [jobA, jobB] = [join(root, 'job-a'), join(root, 'job-b')];
    for (const job of [jobA, jobB]) {
      await cp(join(root, 'src'), join(job, 'src'), { recursive: true });
      for (const f of ['Taskfile.yml', 'build.sh']) await cp(join(root, f), join(job, f));
    }
    const env = cleanEnv({
      TASK_CACHE_OCI_USER: registry.username,
      TASK_CACHE_OCI_PASSWORD: registry.password,
      TASK_CACHE_OCI_CA: registry.caFile,
      CI_CACHE_REDIS_URL: `:${redis.password}@127.0.0.1:${redis.port}`,
      TASK_CACHE_DIR: join(root, '.default-cache'),
    });
    const release = () => writeFile(join(root, 'release'), '');
    const runA = runTask(['build'], { cwd: jobA, env });
    // A holds the lock once its build has started.
    while ((await buildCount(root)) === 0) await new Promise((r) => setTimeout(r, 50));
    const runB = runTask(['build'], {
      cwd: jobB,
      env,
      onStderr: (soFar) => {
        if (soFar.includes('waiting for the cache lock')) void release();
      },
    });
    // If B never waits (a bug), let A finish so the test fails on the lines, not on a timeout.
    const b = await runB.finally(release);
    const a = await runA;
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(await buildCount(root)).toBe(1);
    expect(a.lines).toEqual([
      'task: [build] ./build.sh',
      expect.stringMatching(/^task: "build" saved to cache \(pushed (\d+)\/\1 chunks, /),
    ]);
    expect(b.lines).toEqual([
      'task: "build" waiting for the cache lock',
      'task: "build" built by another job, restoring',
      'task: "build" restored from cache',
    ]);
    expect(await treeDigest(join(jobB, 'dist'))).toEqual(await treeDigest(join(jobA, 'dist')));
  });

  it('a wrong registry password is a warning: the build runs and the task succeeds', async () => {
    const dir = await makeProject(GUIDE_TASKFILE.replace('harbor.example.com', registry.host));
    const run = await runTask(['build'], {
      cwd: dir,
      env: cleanEnv({
        TASK_CACHE_OCI_USER: registry.username,
        TASK_CACHE_OCI_PASSWORD: 'wrong-password',
        TASK_CACHE_OCI_CA: registry.caFile,
        CI_CACHE_REDIS_URL: `:${redis.password}@127.0.0.1:${redis.port}`,
        TASK_CACHE_DIR: join(dir, '.default-cache'),
      }),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(await buildCount(dir)).toBe(1);
    expect(run.lines).toContain('task: [build] ./build.sh');
    expect(run.lines.some((l) => l.startsWith('task: "build" cache warning: '))).toBe(true);
    expect(run.stderr).not.toContain('saved to cache');
    expect(run.stderr).not.toContain('wrong-password');
    expect(run.stderr).not.toContain(redis.password!);
  });
});
