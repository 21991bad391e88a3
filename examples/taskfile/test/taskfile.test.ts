import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TaskfileError } from '../src/errors.js';
import { loadTaskfile, parseTaskfile } from '../src/taskfile.js';
import { GUIDE_TASKFILE } from './helpers.js';

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TaskfileError);
    return { code: (error as TaskfileError).code, message: (error as Error).message };
  }
  throw new Error('expected a TaskfileError');
}

describe('parseTaskfile', () => {
  it('reads the guide’s Taskfile', () => {
    const tf = parseTaskfile(GUIDE_TASKFILE, '/repo/Taskfile.yml');
    expect(tf.dir).toBe('/repo');
    const build = tf.tasks.get('build')!;
    expect(build.sources).toEqual(['src/**']);
    expect(build.generates).toEqual(['dist/**']);
    expect(build.cmds).toEqual([{ kind: 'cmd', cmd: './build.sh', where: 'tasks.build.cmds[0]' }]);
    expect(build.cache).toEqual({
      enabled: '{{ne .CI_CACHE_REDIS_URL ""}}',
      url: 'oci://harbor.example.com/task-cache/build:{{urlsafe .TASK}}-{{.CHECKSUM}}',
      lock: 'redis://{{.CI_CACHE_REDIS_URL}}/lock:{{urlsafe .TASK}}-{{.CHECKSUM}}',
      where: 'tasks.build.cache',
    });
  });

  it('reads vars, env, deps, dir, desc, task calls and the shorthands', () => {
    const tf = parseTaskfile(
      `version: 3
vars: { NAME: app, N: 2, SH: { sh: 'echo hi' } }
env: { MODE: prod }
tasks:
  default: echo one
  list: [echo a, echo b]
  build:
    desc: Build it
    dir: '{{.NAME}}'
    deps: [list, { task: default }]
    env: { X: '1' }
    cmds:
      - cmd: make
      - task: default
    cache: { enabled: true }
`,
      '/r/Taskfile.yml',
    );
    expect(tf.vars.map((v) => [v.name, v.definition])).toEqual([
      ['NAME', { kind: 'static', value: 'app' }],
      ['N', { kind: 'static', value: '2' }],
      ['SH', { kind: 'sh', sh: 'echo hi' }],
    ]);
    expect(tf.env[0]?.name).toBe('MODE');
    expect(tf.tasks.get('default')!.cmds).toEqual([
      { kind: 'cmd', cmd: 'echo one', where: 'tasks.default.cmds[0]' },
    ]);
    expect(tf.tasks.get('list')!.cmds.map((c) => c.kind === 'cmd' && c.cmd)).toEqual(['echo a', 'echo b']);
    const build = tf.tasks.get('build')!;
    expect(build.desc).toBe('Build it');
    expect(build.dir).toBe('{{.NAME}}');
    expect(build.deps.map((d) => d.task)).toEqual(['list', 'default']);
    expect(build.cmds[1]).toEqual({ kind: 'task', task: 'default', where: 'tasks.build.cmds[1]' });
    expect(build.cache).toEqual({ enabled: true, url: '', lock: '', where: 'tasks.build.cache' });
    expect(tf.tasks.get('list')!.cache).toBeUndefined();
  });

  it.each([
    ['tasks: {}', 'ERR_TASKFILE_INVALID', 'Taskfile.yml: version: missing "version"'],
    ["version: '2'\ntasks: {}", 'ERR_TASKFILE_INVALID', 'version "2" is not supported'],
    [
      "version: '3'\nincludes: {}\ntasks: {}",
      'ERR_TASKFILE_INVALID',
      'includes: "includes" is not supported by this runner',
    ],
    ["version: '3'\nfoo: 1\ntasks: {}", 'ERR_TASKFILE_INVALID', 'foo: unknown key "foo"'],
    [
      "version: '3'\ntasks:\n  b:\n    status: [x]",
      'ERR_TASKFILE_INVALID',
      'tasks.b.status: "status" is not supported',
    ],
    [
      "version: '3'\ntasks:\n  b:\n    cache: { url: 1 }",
      'ERR_TASKFILE_INVALID',
      'tasks.b.cache.url: expected a string',
    ],
    [
      "version: '3'\ntasks:\n  b:\n    cache: { ttl: 1 }",
      'ERR_TASKFILE_INVALID',
      'tasks.b.cache.ttl: unknown key "ttl"',
    ],
    [
      "version: '3'\ntasks:\n  b:\n    sources: src/**",
      'ERR_TASKFILE_INVALID',
      'tasks.b.sources: expected a list',
    ],
    [
      "version: '3'\ntasks:\n  b:\n    cmds: [{ defer: x }]",
      'ERR_TASKFILE_INVALID',
      'tasks.b.cmds[0]: expected a command string',
    ],
    ["version: '3'\nvars: { X: [1] }\ntasks: {}", 'ERR_TASKFILE_INVALID', 'vars.X: expected a string'],
    ["version: '3'\ntasks:\n  b: { cmds: [a]\n", 'ERR_TASKFILE_INVALID', 'Taskfile.yml: invalid YAML'],
    ["version: '3'\ntasks:\n  b: {}\n  b: {}\n", 'ERR_TASKFILE_INVALID', 'invalid YAML'],
  ])('%j → %s', (text, code, message) => {
    const error = codeOf(() => parseTaskfile(text, '/x/Taskfile.yml'));
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
  });
});

describe('loadTaskfile', () => {
  it('finds Taskfile.yml or Taskfile.yaml, and names the directory when there is none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'taskfile-'));
    await expect(loadTaskfile(dir)).rejects.toMatchObject({
      code: 'ERR_TASKFILE_NOT_FOUND',
      message: `no Taskfile.yml found in ${dir}`,
    });
    await writeFile(join(dir, 'Taskfile.yaml'), "version: '3'\ntasks: { a: echo }\n");
    expect([...(await loadTaskfile(dir)).tasks.keys()]).toEqual(['a']);
  });
});
