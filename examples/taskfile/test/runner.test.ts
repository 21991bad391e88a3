/**
 * The runner as a real process on the embedded default store (an OCI image layout in
 * TASK_CACHE_DIR) and the local lock — what `pnpm demo` does, with no server.
 */
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCount, cleanEnv, GUIDE_TASKFILE, makeProject, runTask, treeDigest } from './helpers.js';

const LOCAL_TASKFILE = GUIDE_TASKFILE.replace(
  /cache:\n(\s+enabled: .*\n)(\s+url: .*\n)(\s+lock: .*\n)/,
  "cache:\n      enabled: true\n      url: '{{.DEMO_CACHE_URL}}'\n      lock: '{{.DEMO_LOCK_URL}}'\n",
);

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe('task (embedded default store, local lock)', () => {
  it('saves, then restores after rm -rf dist .task, then is up to date; --force rebuilds', async () => {
    expect(LOCAL_TASKFILE).toContain("url: '{{.DEMO_CACHE_URL}}'");
    const dir = await makeProject(LOCAL_TASKFILE);
    const env = cleanEnv({ TASK_CACHE_DIR: join(dir, '.cache') });

    const first = await runTask(['build'], { cwd: dir, env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.lines).toEqual([
      'task: [build] ./build.sh',
      expect.stringMatching(/^task: "build" saved to cache \(pushed (\d+)\/\1 chunks, \d+\.\d kB\)$/),
    ]);
    // The embedded default is an OCI image layout.
    expect(JSON.parse(await readFile(join(dir, '.cache', 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    const built = await treeDigest(join(dir, 'dist'));

    await rm(join(dir, 'dist'), { recursive: true });
    await rm(join(dir, '.task'), { recursive: true });
    const second = await runTask(['build'], { cwd: dir, env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.lines).toEqual(['task: "build" restored from cache']);
    expect(await treeDigest(join(dir, 'dist'))).toEqual(built);
    expect(await buildCount(dir)).toBe(1);

    const third = await runTask(['build'], { cwd: dir, env });
    expect(third.lines).toEqual(['task: Task "build" is up to date']);

    // A changed source is a new key: built and saved again.
    await writeFile(join(dir, 'src', 'main.js'), 'console.log("changed");\n');
    const fourth = await runTask(['build'], { cwd: dir, env });
    expect(fourth.lines[0]).toBe('task: [build] ./build.sh');
    expect(fourth.lines[1]).toMatch(/^task: "build" saved to cache \(pushed \d+\/\d+ chunks, /);
    expect(await buildCount(dir)).toBe(2);

    // --force runs an up-to-date task and overwrites its entry.
    const forced = await runTask(['--force', 'build'], { cwd: dir, env });
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.lines[0]).toBe('task: [build] ./build.sh');
    expect(await buildCount(dir)).toBe(3);
  });

  it('with the guide’s Taskfile and no CI_CACHE_REDIS_URL, the cache is disabled: it just builds', async () => {
    const dir = await makeProject(GUIDE_TASKFILE);
    const env = cleanEnv({ TASK_CACHE_DIR: join(dir, '.cache') });
    const first = await runTask(['build'], { cwd: dir, env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.lines).toEqual(['task: [build] ./build.sh']);
    await rm(join(dir, 'dist'), { recursive: true });
    await rm(join(dir, '.task'), { recursive: true });
    const second = await runTask(['build'], { cwd: dir, env });
    expect(second.lines).toEqual(['task: [build] ./build.sh']);
    expect(await buildCount(dir)).toBe(2);
    expect(await exists(join(dir, '.cache'))).toBe(false);
  });

  it('an unreachable lock Redis is one warning line: the task builds, saves and succeeds', async () => {
    const dir = await makeProject(LOCAL_TASKFILE);
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const env = cleanEnv({
      TASK_CACHE_DIR: join(dir, '.cache'),
      DEMO_LOCK_URL: 'redis://:s3cret@127.0.0.1:1',
    });
    const run = await runTask(['build'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(0);
    expect(run.lines).toEqual([
      expect.stringMatching(
        /^task: "build" cache lock unavailable, building without it \(redis:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:1/,
      ),
      'task: [build] ./build.sh',
      expect.stringMatching(/^task: "build" saved to cache \(pushed (\d+)\/\1 chunks, /),
    ]);
    expect(run.stderr).not.toContain('s3cret');
  });

  // Regression (issue 16): a task name over 63 characters made the guide's key
  // `{{urlsafe .TASK}}-{{.CHECKSUM}}` an invalid tag, and the run threw before building.
  it('a task name over 63 characters in the guide’s key form is shortened: it saves, then restores', async () => {
    const name = `build-${'very-long-task-name-'.repeat(5)}end`;
    const taskfile = GUIDE_TASKFILE.replace('  build:\n', `  ${name}:\n`).replace(
      /cache:\n(\s+enabled: .*\n)(\s+url: .*\n)(\s+lock: .*\n)/,
      "cache:\n      enabled: true\n      url: 'oci-layout:{{.STORE_DIR}}:{{urlsafe .TASK}}-{{.CHECKSUM}}'\n      lock: ''\n",
    );
    expect(taskfile).toContain(`  ${name}:`);
    const dir = await makeProject(taskfile);
    const env = cleanEnv({ TASK_CACHE_DIR: join(dir, '.cache'), STORE_DIR: join(dir, '.store') });
    const first = await runTask([name], { cwd: dir, env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.lines[1]).toMatch(/saved to cache/);
    await rm(join(dir, 'dist'), { recursive: true });
    await rm(join(dir, '.task'), { recursive: true, force: true });
    const second = await runTask([name], { cwd: dir, env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.lines).toEqual([`task: "${name}" restored from cache`]);
    expect(await buildCount(dir)).toBe(1);
  });

  it('exits with the failing command’s exit status and saves nothing', async () => {
    const dir = await makeProject(
      LOCAL_TASKFILE,
      '#!/bin/sh\necho run >> builds.log\nmkdir -p dist\necho half > dist/x\nexit 3\n',
    );
    const env = cleanEnv({ TASK_CACHE_DIR: join(dir, '.cache') });
    const run = await runTask(['build'], { cwd: dir, env });
    expect(run.code).toBe(3);
    expect(run.lines).toEqual([
      'task: [build] ./build.sh',
      'task: Failed to run task "build": exit status 3',
    ]);
    expect(await exists(join(dir, '.task'))).toBe(false);
    // Nothing was saved: a second run builds again.
    const again = await runTask(['build'], { cwd: dir, env });
    expect(again.code).toBe(3);
    expect(await buildCount(dir)).toBe(2);
  });

  it('renders vars, env, .TASK and dir; runs deps first; a task without cache: is not cached', async () => {
    const dir = await makeProject(`version: '3'
vars:
  NAME: world
  GREETING: 'hello {{.NAME}}'
  REV: { sh: 'echo r1' }
env:
  FROM_ENV: '{{.GREETING}}'
tasks:
  prep:
    cmds:
      - mkdir -p sub && echo prepared > sub/p.txt
  hello:
    deps: [prep]
    dir: sub
    vars: { NAME: task-var }
    cmds:
      - echo "{{.TASK}} {{.GREETING}} {{.NAME}} $FROM_ENV {{.REV}} $(cat p.txt) {{urlsafe "a/b c"}}"
      - task: prep
`);
    const env = cleanEnv({ TASK_CACHE_DIR: join(dir, '.cache') });
    const run = await runTask(['hello'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(0);
    // Taskfile vars render in order; a task var overrides a Taskfile var, as in Task.
    expect(run.stdout).toBe('hello hello world task-var hello world r1 prepared a_b_c\n');
    expect(run.lines).toEqual([
      'task: [prep] mkdir -p sub && echo prepared > sub/p.txt',
      'task: [hello] echo "hello hello world task-var $FROM_ENV r1 $(cat p.txt) a_b_c"',
      'task: [prep] mkdir -p sub && echo prepared > sub/p.txt',
    ]);
    expect(await exists(join(dir, '.cache'))).toBe(false);
  });

  it.each([
    [['nope'], 1, 'task: Task "nope" does not exist (tasks: build)'],
    [['--bogus'], 2, "task: Unknown option '--bogus'"],
  ])('task %j exits %i', async (args, code, line) => {
    const dir = await makeProject(LOCAL_TASKFILE);
    const run = await runTask(args, { cwd: dir, env: cleanEnv({ TASK_CACHE_DIR: join(dir, '.cache') }) });
    expect(run.code).toBe(code);
    expect(run.lines[0]).toContain(line);
  });

  it('an unsupported template is an error naming the Taskfile, the key and the column', async () => {
    const dir = await makeProject(
      GUIDE_TASKFILE.replace('{{urlsafe .TASK}}-{{.CHECKSUM}}', '{{.TASK | upper}}'),
    );
    const run = await runTask(['build', '--dir', dir], {
      cwd: '/',
      env: cleanEnv({ CI_CACHE_REDIS_URL: ':x@127.0.0.1:1', TASK_CACHE_DIR: join(dir, '.cache') }),
    });
    expect(run.code).toBe(1);
    expect(run.lines).toEqual([
      'task: Taskfile.yml: tasks.build.cache.url: template "oci://harbor.example.com/task-cache/build:{{.TASK | upper}}", column 51: pipelines ("|") are not supported; call the function instead',
    ]);
  });
});
