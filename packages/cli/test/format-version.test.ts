/**
 * `task-cache run --format-version`, its twin TASK_CACHE_FORMAT_VERSION and the config file's
 * `formatVersion`, through the built binary on the embedded store: the version of the saved entry (as
 * `task-cache inspect` reads it from the store), a byte-identical restore of a version 2 entry, the
 * precedence, and the usage errors.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cli, requireBuilt, sandbox } from './helpers.js';

let box: Awaited<ReturnType<typeof sandbox>>;
beforeAll(requireBuilt);
beforeEach(async () => {
  box = await sandbox();
  await mkdir(join(box.project, 'src'), { recursive: true });
  await writeFile(join(box.project, 'src', 'a.txt'), 'source\n');
});
afterEach(() => box.cleanup());

const TASK = ['--task', 'pack', '--sources', 'src/**', '--generates', 'out/**', '--json'];
// Random bytes (several chunks, incompressible) and a text file: a fresh build differs from the saved one.
const CMD = [
  'sh',
  '-c',
  'echo packing; mkdir -p out; head -c 3000000 /dev/urandom > out/bin; date +%s%N > out/stamp',
];

const inspect = async (key: string) => {
  const r = await cli(['inspect', key, '--json'], box.project, box.env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { formatVersion: number; blobs: number; chunks: number };
};

type View = Awaited<ReturnType<typeof inspect>>;

/** Saves with `flags` and `env`, checks that the next run restores it, and returns its inspect view. */
async function saveAndRestore(flags: string[], env: Record<string, string>): Promise<View> {
  const saved = await cli(['run', ...flags, ...TASK, '--', ...CMD], box.project, env);
  expect(saved.code, saved.stderr).toBe(0);
  const result = JSON.parse(saved.stdout);
  expect(result).toMatchObject({ status: 'saved' });
  const bin = await readFile(join(box.project, 'out', 'bin'));
  const stamp = await readFile(join(box.project, 'out', 'stamp'));
  const view = await inspect(result.key);

  // A real restore, not the up-to-date stamp: the outputs are gone.
  await rm(join(box.project, 'out'), { recursive: true });
  const hit = await cli(['run', ...flags, ...TASK, '--', ...CMD], box.project, env);
  expect(hit.code, hit.stderr).toBe(0);
  expect(JSON.parse(hit.stdout)).toMatchObject({ status: 'restored', key: result.key });
  expect(JSON.parse(hit.stdout).reason).not.toBe('up-to-date');
  // The log replayed (on stderr under --json), the command not run again.
  expect(hit.stderr).toContain('packing\n');
  expect(hit.stderr).not.toContain('saved to cache');
  expect((await readFile(join(box.project, 'out', 'bin'))).equals(bin)).toBe(true);
  expect((await readFile(join(box.project, 'out', 'stamp'))).equals(stamp)).toBe(true);
  return view;
}

/** A version 2 entry: its chunks packed into fewer blobs. */
const packed = (view: View) => {
  expect(view.formatVersion).toBe(2);
  expect(view.blobs).toBeLessThan(view.chunks);
};

/** A version 1 entry: one blob per chunk. */
const perChunk = (view: View) => {
  expect(view.formatVersion).toBe(1);
  expect(view.blobs).toBe(view.chunks);
  expect(view.chunks).toBeGreaterThan(1);
};

describe('task-cache run --format-version', () => {
  it('without it the entry is version 2 (packs), and the next run restores it byte-identical', async () => {
    packed(await saveAndRestore([], box.env));
  });

  it('--format-version 1 saves a version 1 entry (one blob per chunk) that the next run restores byte-identical', async () => {
    perChunk(await saveAndRestore(['--format-version', '1'], box.env));
  });

  it('TASK_CACHE_FORMAT_VERSION=1 does the same', async () => {
    perChunk(await saveAndRestore([], { ...box.env, TASK_CACHE_FORMAT_VERSION: '1' }));
  });

  it('the config file: "formatVersion": 1', async () => {
    await writeFile(join(box.project, 'task-cache.json'), JSON.stringify({ formatVersion: 1 }));
    perChunk(await saveAndRestore([], box.env));
  });

  it('precedence: the flag over the environment, the environment over the config file', async () => {
    await writeFile(join(box.project, 'task-cache.json'), JSON.stringify({ formatVersion: 1 }));
    const env = { ...box.env, TASK_CACHE_FORMAT_VERSION: '2' };
    packed(await saveAndRestore([], env));
    await rm(join(box.root, 'cache'), { recursive: true });
    perChunk(await saveAndRestore(['--format-version', '1'], env));
  });

  it.each([
    [['--format-version', '3'], {}, 'run: --format-version: expected 1 or 2, got "3"'],
    [['--format-version', 'v2'], {}, 'run: --format-version: expected 1 or 2, got "v2"'],
    [[], { TASK_CACHE_FORMAT_VERSION: 'x' }, 'TASK_CACHE_FORMAT_VERSION: expected 1 or 2, got "x"'],
    [[], { TASK_CACHE_FORMAT_VERSION: '3' }, 'TASK_CACHE_FORMAT_VERSION: expected 1 or 2, got "3"'],
  ])('%j %j exits 64 naming it, the command does not run', async (flags, env, message) => {
    const r = await cli(['run', '--task', 'v', ...flags, '--', 'echo', 'ran'], box.project, {
      ...box.env,
      ...env,
    });
    expect(r.code).toBe(64);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`task-cache: ${message}\n`);
  });

  it('a config file formatVersion other than 1 or 2 exits 64 naming the field and the file', async () => {
    const file = join(box.project, 'task-cache.json');
    await writeFile(file, JSON.stringify({ formatVersion: '2' }));
    const r = await cli(['run', '--task', 'v', '--', 'echo', 'ran'], box.project, box.env);
    expect(r.code).toBe(64);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`task-cache: ${file}: formatVersion must be 1 or 2, got "2"\n`);
  });
});
