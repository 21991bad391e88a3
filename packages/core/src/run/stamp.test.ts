import { chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CacheEvent } from '../events/types.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import { createCache } from './cache.js';

// Issue 14 step 3: a hit whose outputs are already on disk restores nothing (a local stamp says
// so), and any change to the outputs makes the next hit restore again.

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tc-stamp-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
let dir: string;
let stateDir: string;
beforeEach(async () => {
  n += 1;
  dir = join(root, `p${n}`);
  stateDir = join(root, `state${n}`);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src/main.c'), 'int main() { return 0; }\n');
});

const task = () => ({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] });

function setup() {
  const store = countingStore(createMemoryStore());
  const events: CacheEvent[] = [];
  const cache = createCache({ store, stateDir, lock: false, onEvent: (e) => events.push(e) });
  let builds = 0;
  const build = async () => {
    builds += 1;
    await mkdir(join(dir, 'dist/sub'), { recursive: true });
    await writeFile(join(dir, 'dist/a.txt'), 'alpha\n');
    await writeFile(join(dir, 'dist/sub/b.txt'), 'bravo\n');
  };
  return { store, events, cache, build, builds: () => builds };
}

describe('the up-to-date stamp', () => {
  it('after a save, the next hit restores nothing: status restored, reason up-to-date, an event, no store call', async () => {
    const { store, events, cache, build, builds } = setup();
    expect((await cache.run(task(), build)).status).toBe('saved');
    store.resetCounts();
    events.length = 0;
    const r = await cache.run(task(), build);
    expect(r).toMatchObject({ status: 'restored', reason: 'up-to-date' });
    expect(r.stats.files).toBe(2);
    expect(builds()).toBe(1);
    expect(Object.values(store.counts).every((c) => c === 0)).toBe(true);
    expect(events.map((e) => e.type)).toEqual(['up-to-date']);
    expect(events[0]).toMatchObject({ type: 'up-to-date', task: 'build', key: r.key, files: 2 });
  });

  it('after a restore, the next hit is up to date too', async () => {
    const { cache, build } = setup();
    await cache.run(task(), build);
    await rm(join(dir, 'dist'), { recursive: true });
    const restored = await cache.run(task(), build);
    expect(restored.status).toBe('restored');
    expect(restored.reason).toBeUndefined();
    expect((await cache.run(task(), build)).reason).toBe('up-to-date');
  });

  const changes: Array<[string, () => Promise<void>]> = [
    // Same size, mtime set back: only the ctime (and the content) differ.
    [
      'an output rewritten with the same size and mtime',
      async () => {
        const p = join(dir, 'dist/a.txt');
        const s = await stat(p);
        await writeFile(p, 'ALPHA\n');
        await utimes(p, s.atime, s.mtime);
      },
    ],
    ['an output deleted', () => rm(join(dir, 'dist/sub/b.txt'))],
    ['an output added', () => writeFile(join(dir, 'dist/extra.txt'), 'extra\n')],
    ['an output directory added', () => mkdir(join(dir, 'dist/empty'))],
    ['an output chmod-ed', () => chmod(join(dir, 'dist/a.txt'), 0o600)],
  ];
  for (const [what, change] of changes) {
    it(`${what} after a restore → the next hit restores again`, async () => {
      const { store, events, cache, build, builds } = setup();
      await cache.run(task(), build);
      await rm(join(dir, 'dist'), { recursive: true });
      expect((await cache.run(task(), build)).reason).toBeUndefined(); // a real restore
      await change();
      store.resetCounts();
      events.length = 0;
      const r = await cache.run(task(), build);
      expect(r.status).toBe('restored');
      expect(r.reason).toBeUndefined();
      expect(store.counts.fetchBlob).toBeGreaterThan(0);
      expect(events.map((e) => e.type)).toContain('restored');
      expect(builds()).toBe(1);
      // The outputs are the entry's again, and the next hit is up to date.
      expect(await readFile(join(dir, 'dist/a.txt'), 'utf8')).toBe('alpha\n');
      expect(await readFile(join(dir, 'dist/sub/b.txt'), 'utf8')).toBe('bravo\n');
      expect((await cache.run(task(), build)).reason).toBe('up-to-date');
    });
  }

  it('a changed source (another key) is never up to date; force and shouldRestore skip the stamp', async () => {
    const { cache, build, builds } = setup();
    await cache.run(task(), build);
    await writeFile(join(dir, 'src/main.c'), 'int main() { return 1; }\n');
    expect((await cache.run(task(), build)).status).toBe('saved');
    expect(builds()).toBe(2);
    expect((await cache.run({ ...task(), policy: { force: true } }, build)).status).toBe('saved');
    expect(builds()).toBe(3);
    const r = await cache.run({ ...task(), policy: { shouldRestore: () => true } }, build);
    expect(r.status).toBe('restored');
    expect(r.reason).toBeUndefined();
  });

  it('a damaged stamp is a mismatch, not an error', async () => {
    const { cache, build } = setup();
    await cache.run(task(), build);
    const { readdir } = await import('node:fs/promises');
    const [file] = await readdir(join(stateDir, 'stamps'));
    await writeFile(join(stateDir, 'stamps', file as string), '{not json');
    const r = await cache.run(task(), build);
    expect(r.status).toBe('restored');
    expect(r.reason).toBeUndefined();
  });
});
