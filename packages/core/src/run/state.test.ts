import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCache } from './cache.js';

// Every file the SDK writes is under the cache dir of `env` or under `stateDir` (issue 13: the
// remembered bases went to the real ~/.cache/task-cache/bases whatever `env` said).

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tc-state-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
async function fresh(name: string): Promise<string> {
  const d = join(root, `${name}-${++seq}`);
  await mkdir(d, { recursive: true });
  return d;
}

async function project(): Promise<string> {
  const dir = await fresh('task');
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src/main.c'), 'int main() { return 0; }\n');
  return dir;
}

const build = (dir: string) => async () => {
  await mkdir(join(dir, 'dist'), { recursive: true });
  await writeFile(join(dir, 'dist/out.txt'), 'built');
};

const task = { task: 'build', sources: ['src/**'], generates: ['dist/**'] };

/** Relative paths of every file and directory under `dir`. */
async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe('state flows in: env and stateDir decide where every file goes', () => {
  it('env only (HOME): the embedded store, the bases and the lock files are under $HOME/.cache/task-cache', async () => {
    const home = await fresh('home');
    const dir = await project();
    const cache = createCache({ env: { HOME: home } });
    try {
      expect((await cache.run({ ...task, dir }, build(dir))).status).toBe('saved');
    } finally {
      await cache.close();
    }
    const files = await listing(home);
    expect(files.every((f) => f === '.cache' || f.startsWith('.cache/task-cache'))).toBe(true);
    expect(files).toContain('.cache/task-cache/index.json');
    expect(files.some((f) => f.startsWith('.cache/task-cache/bases/'))).toBe(true);
    expect(files).toContain('.cache/task-cache/locks');
  });

  it('TASK_CACHE_DIR moves the store, the bases and the locks; HOME stays empty', async () => {
    const home = await fresh('home');
    const cacheDir = await fresh('cache');
    const dir = await project();
    const cache = createCache({ env: { HOME: home, TASK_CACHE_DIR: cacheDir } });
    try {
      await cache.run({ ...task, dir }, build(dir));
    } finally {
      await cache.close();
    }
    expect(await listing(home)).toEqual([]);
    const files = await listing(cacheDir);
    expect(files).toContain('index.json');
    expect(files.some((f) => f.startsWith('bases/'))).toBe(true);
    expect(files).toContain('locks');
  });

  it('stateDir holds the bases and the local lock files; the store stays in the cache dir', async () => {
    const home = await fresh('home');
    const cacheDir = await fresh('cache');
    const stateDir = await fresh('state');
    const dir = await project();
    const cache = createCache({ env: { HOME: home, TASK_CACHE_DIR: cacheDir }, stateDir });
    try {
      await cache.run({ ...task, dir }, build(dir));
      await rm(join(dir, 'dist'), { recursive: true });
      expect((await cache.run({ ...task, dir }, build(dir))).status).toBe('restored');
    } finally {
      await cache.close();
    }
    expect(await listing(home)).toEqual([]);
    const state = await listing(stateDir);
    expect(state.some((f) => f.startsWith('bases/') && f.endsWith('.json'))).toBe(true);
    expect(state).toContain('locks');
    expect(state).toContain('stats/runs.jsonl');
    const store = await listing(cacheDir);
    expect(store).toContain('index.json');
    expect(store.some((f) => f.startsWith('bases') || f.startsWith('locks') || f.startsWith('stats'))).toBe(
      false,
    );
  });
});
