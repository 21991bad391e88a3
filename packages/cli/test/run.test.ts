/**
 * `task-cache run`, through the built binary on the embedded default store (issue 21): the
 * acceptance scenario, exit codes, a failed command never saved, signals, output replay and its
 * interleaving, --quiet-hit, --json, the config file and the environment twins.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BIN, cli, finished, requireBuilt, sandbox, start } from './helpers.js';

let box: Awaited<ReturnType<typeof sandbox>>;
beforeAll(requireBuilt);
beforeEach(async () => {
  box = await sandbox();
  await mkdir(join(box.project, 'src'), { recursive: true });
  await writeFile(join(box.project, 'src', 'a.txt'), 'source\n');
});
afterEach(async () => {
  // Hermetic: nothing was written to HOME.
  const home = await readdir(box.env.HOME!).catch(() => []);
  expect(home).toEqual([]);
  await box.cleanup();
});

const LINT = ['run', '--task', 'lint', '--sources', 'src/**', '--generates', 'out/**', '--'];
const LINT_CMD = ['sh', '-c', 'echo linting; mkdir -p out; date +%s%N > out/x'];

describe('task-cache run (embedded store)', () => {
  it('the acceptance scenario: the second run replays the output, restores out/x and exits 0', async () => {
    const first = await cli([...LINT, ...LINT_CMD], box.project, box.env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('linting\n');
    expect(first.stderr).toMatch(/^task: "lint" saved to cache \(pushed \d+\/\d+ chunks, [\d.]+ [kM]?B\)$/m);
    const x = await readFile(join(box.project, 'out', 'x'), 'utf8');

    await writeFile(join(box.project, 'out', 'x'), 'changed by hand\n');
    const second = await cli([...LINT, ...LINT_CMD], box.project, box.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('linting\n');
    expect(second.stderr).toContain('task: "lint" restored from cache');
    expect(second.stderr).not.toContain('saved to cache');
    expect(await readFile(join(box.project, 'out', 'x'), 'utf8')).toBe(x);
  });

  it('the command line is part of the key', async () => {
    await cli([...LINT, 'sh', '-c', 'echo one; mkdir -p out; echo 1 > out/x'], box.project, box.env);
    const other = await cli(
      [...LINT, 'sh', '-c', 'echo two; mkdir -p out; echo 2 > out/x'],
      box.project,
      box.env,
    );
    expect(other.stdout).toBe('two\n');
    expect(other.stderr).toContain('saved to cache');
    expect(await readFile(join(box.project, 'out', 'x'), 'utf8')).toBe('2\n');
  });

  it('a command that exits 3 makes the CLI exit 3 and saves nothing', async () => {
    const cmd = ['run', '--task', 'bad', '--json', '--', 'sh', '-c', 'echo trying; exit 3'];
    const first = await cli(cmd, box.project, box.env);
    expect(first.code).toBe(3);
    expect(JSON.parse(first.stdout)).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(first.stderr).toContain('trying');
    expect(first.stderr).not.toContain('saved to cache');
    // Nothing saved: the same run is a miss again (the command runs).
    const second = await cli(cmd, box.project, box.env);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain('trying');
    expect(second.stderr).not.toContain('restored from cache');
    // No partial log left behind.
    expect(await readdir(join(box.project, '.task-cache', 'logs'))).toEqual([]);
  });

  it('SIGINT during a 10 s command ends both, exits 130 and leaves no staging directory', async () => {
    const marker = `sleep 10.${process.pid}${Date.now() % 1000}`;
    const child = start(
      [
        'run',
        '--task',
        'slow',
        '--generates',
        'out/**',
        '--',
        'sh',
        '-c',
        `echo started; ${marker}; echo done`,
      ],
      box.project,
      box.env,
    );
    const done = finished(child);
    await new Promise<void>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('started') && resolve());
    });
    child.kill('SIGINT');
    // NOTE: a bound, not a timing: the command would take 10 s to end on its own.
    const result = await Promise.race([
      done,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still running after 5 s')), 5000)),
    ]);
    expect(result.code).toBe(130);
    expect(result.stdout).not.toContain('done');
    expect(result.stderr).toContain('interrupted by SIGINT, nothing saved');
    // The command's process tree is gone too.
    const ps = await finished(spawn('ps', ['-eo', 'args'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(ps.stdout).not.toContain(marker);
    // No staging or partial file in the task directory.
    const left = await readdir(box.project, { recursive: true });
    expect(left.filter((p) => /\.task-cache-|\.partial-/.test(p))).toEqual([]);
    expect(left).not.toContain('out');
  });

  it('SIGTERM is forwarded and exits 143', async () => {
    const child = start(
      ['run', '--task', 'term', '--', 'sh', '-c', 'echo started; sleep 10'],
      box.project,
      box.env,
    );
    const done = finished(child);
    await new Promise<void>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('started') && resolve());
    });
    child.kill('SIGTERM');
    expect((await done).code).toBe(143);
  });

  it('replays stdout and stderr in the order they were written', async () => {
    const script = 'echo o1; sleep 0.05; echo e1 >&2; sleep 0.05; echo o2; sleep 0.05; echo e2 >&2';
    const args = ['run', '--task', 'mix', '--', 'sh', '-c', script];
    // stdout and stderr on one file: the order of the bytes is observable.
    const both = async (name: string) => {
      const file = join(box.root, name);
      const fd = openSync(file, 'w');
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: box.project,
        env: box.env,
        stdio: ['ignore', fd, fd],
      });
      const code = await new Promise((resolve) => child.once('close', resolve));
      closeSync(fd);
      return { code, text: await readFile(file, 'utf8') };
    };
    const miss = await both('miss.txt');
    expect(miss.code).toBe(0);
    expect(miss.text.split('\n').filter((l) => !l.startsWith('task:'))).toEqual(['o1', 'e1', 'o2', 'e2', '']);
    const hit = await both('hit.txt');
    expect(hit.text).toBe('o1\ne1\no2\ne2\ntask: "mix" restored from cache\n');
  });

  it('--quiet-hit prints one line on a hit', async () => {
    const args = ['run', '--task', 'q', '--quiet-hit', '--', 'sh', '-c', 'echo noisy; echo noisier >&2'];
    await cli(args, box.project, box.env);
    const hit = await cli(args, box.project, box.env);
    expect(hit.code).toBe(0);
    expect(hit.stdout).toBe('');
    expect(hit.stderr).toBe('task: "q" restored from cache\n');
  });

  it('--json: the result on stdout, the command output on stderr', async () => {
    const args = ['run', '--task', 'j', '--json', '--', 'sh', '-c', 'echo out-line'];
    const miss = await cli(args, box.project, box.env);
    expect(JSON.parse(miss.stdout)).toMatchObject({ task: 'j', status: 'saved', exitCode: 0 });
    expect(miss.stderr).toContain('out-line');
    const hit = await cli(args, box.project, box.env);
    const result = JSON.parse(hit.stdout);
    expect(result).toMatchObject({
      task: 'j',
      status: 'restored',
      exitCode: 0,
      command: "sh -c 'echo out-line'",
    });
    expect(result.key).toMatch(/^j-[0-9a-f]{64}$/);
    expect(hit.stderr).toContain('out-line');
  });

  it('a task of task-cache.json runs with no flags; package.json "taskCache" too', async () => {
    await writeFile(
      join(box.project, 'task-cache.json'),
      JSON.stringify({
        tasks: {
          build: {
            command: 'echo building; mkdir -p dist; cp src/a.txt dist/',
            sources: ['src/**'],
            generates: ['dist/**'],
          },
        },
      }),
    );
    const first = await cli(['run', 'build'], box.project, box.env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('task: "build" saved to cache');
    const second = await cli(['run', 'build'], box.project, box.env);
    expect(second.stdout).toBe('building\n');
    expect(second.stderr).toContain('task: "build" restored from cache');
    // A changed source is a miss.
    await writeFile(join(box.project, 'src', 'a.txt'), 'changed\n');
    const third = await cli(['run', 'build'], box.project, box.env);
    expect(third.stderr).toContain('saved to cache');
    expect(await readFile(join(box.project, 'dist', 'a.txt'), 'utf8')).toBe('changed\n');

    const pkgDir = join(box.root, 'pkg');
    await mkdir(pkgDir);
    await writeFile(
      join(pkgDir, 'package.json'),
      JSON.stringify({ name: 'x', taskCache: { tasks: { t: { command: ['sh', '-c', 'echo from-pkg'] } } } }),
    );
    expect((await cli(['run', 't'], pkgDir, box.env)).stdout).toBe('from-pkg\n');
    expect((await cli(['run', 't'], pkgDir, box.env)).stderr).toContain('task: "t" restored from cache');
  });

  it('environment twins: TASK_CACHE_TASK, _SOURCES, _GENERATES, _ENV, _QUIET_HIT', async () => {
    const env = {
      ...box.env,
      TASK_CACHE_TASK: 'twin',
      TASK_CACHE_SOURCES: 'src/**',
      TASK_CACHE_GENERATES: 'out/**',
      TASK_CACHE_ENV: 'MODE',
      TASK_CACHE_QUIET_HIT: '1',
      MODE: 'a',
    };
    const cmd = ['run', '--', 'sh', '-c', 'mkdir -p out; echo "$MODE" > out/m; echo ran'];
    expect((await cli(cmd, box.project, env)).stderr).toContain('task: "twin" saved to cache');
    const hit = await cli(cmd, box.project, env);
    expect(hit.stdout).toBe('');
    expect(hit.stderr).toBe('task: "twin" restored from cache\n');
    // MODE enters the key: another value is a miss.
    const other = await cli(cmd, box.project, { ...env, MODE: 'b' });
    expect(other.stdout).toBe('ran\n');
    expect(await readFile(join(box.project, 'out', 'm'), 'utf8')).toBe('b\n');
  });

  it('a bad cache URL: warning and the command runs; with --strict exit 78 and it does not run', async () => {
    const loose = await cli(
      ['run', '--task', 'u', '--cache', 'bogus://x', '--', 'echo', 'ran'],
      box.project,
      box.env,
    );
    expect(loose.code).toBe(0);
    expect(loose.stdout).toBe('ran\n');
    expect(loose.stderr).toContain('task: "u" cache warning: invalid cache URL');
    const strict = await cli(['run', '--task', 'u', '--strict', '--', 'echo', 'ran'], box.project, {
      ...box.env,
      TASK_CACHE_URL: 'bogus://x',
    });
    expect(strict.code).toBe(78);
    expect(strict.stdout).toBe('');
    expect(strict.stderr).toContain('CACHE_ERR_INVALID_URL');
  });

  it('generates overlapping sources (a task error core finds): warning and uncached run; --strict 78', async () => {
    const args = ['run', '--task', 'overlap', '--sources', 'src/**', '--generates', 'src/**', '--'];
    const loose = await cli([...args, 'echo', 'ran'], box.project, box.env);
    expect(loose.code, loose.stderr).toBe(0);
    expect(loose.stdout).toBe('ran\n');
    expect(loose.stderr).toContain('running without the cache');
    expect(loose.stderr).not.toContain('saved to cache');
    const strict = await cli(['run', '--strict', ...args.slice(1), 'echo', 'ran'], box.project, box.env);
    expect(strict.code).toBe(78);
    expect(strict.stdout).toBe('');
  });

  it('an unreachable registry: a warning and the command runs (exit 0); with --strict exit 75, no run', async () => {
    const url = 'oci://127.0.0.1:1/task-cache/build?plain-http=true';
    const loose = await cli(
      ['run', '--task', 'down', '--cache', url, '--', 'echo', 'ran'],
      box.project,
      box.env,
    );
    expect(loose.code).toBe(0);
    expect(loose.stdout).toBe('ran\n');
    expect(loose.stderr).toContain('task: "down" cache warning: lookup failed');
    const strict = await cli(
      ['run', '--task', 'down', '--strict', '--cache', url, '--', 'echo', 'ran'],
      box.project,
      box.env,
    );
    expect(strict.code).toBe(75);
    expect(strict.stdout).toBe('');
    expect(strict.stderr).toContain('cache trouble in strict mode (LOOKUP_FAILED)');
  });

  it.each([
    [['run', '--', 'true'], 'give the task name'],
    [['run', '--task', 'x'], 'no command'],
    [['run', '--bogus', '--', 'true'], "Unknown option '--bogus'"],
    [['run', 'nope'], 'no task "nope"'],
    [['frobnicate'], 'unknown command'],
    [['run', '--task', 'x', '--tool', 'novalue', '--', 'true'], 'expected NAME=VERSION'],
  ])('usage error %j exits 64', async (args, message) => {
    const r = await cli(args, box.project, box.env);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain(message);
  });

  it('on a terminal the command is told to colour (FORCE_COLOR=1) and the replay keeps the bytes', async () => {
    // `script` (util-linux) gives the CLI a pseudo-terminal as stdout and stderr.
    const cmd = `${process.execPath} ${BIN} run --task tty -- sh -c 'printf "\\033[31mred%s\\033[0m\\n" "$FORCE_COLOR"'`;
    const viaTty = () =>
      finished(
        spawn('script', ['-qec', cmd, '/dev/null'], {
          cwd: box.project,
          env: box.env,
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
    const miss = await viaTty();
    expect(miss.code, miss.stderr).toBe(0);
    expect(miss.stdout).toContain('\x1b[31mred1\x1b[0m');
    const hit = await viaTty();
    expect(hit.stdout).toContain('\x1b[31mred1\x1b[0m');
    expect(hit.stdout).toContain('task: "tty" restored from cache');
    // Without a terminal, FORCE_COLOR is left alone.
    const plain = await cli(
      ['run', '--task', 'notty', '--', 'sh', '-c', 'echo "[$FORCE_COLOR]"'],
      box.project,
      box.env,
    );
    expect(plain.stdout).toBe('[]\n');
  });

  it('a missing command exits 127', async () => {
    const r = await cli(['run', '--task', 'nf', '--', 'no-such-command-tc'], box.project, box.env);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('command not found');
  });
});
