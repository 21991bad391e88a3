/**
 * Issue 16 at the run level: `generates` and `sources` are checked before the build (nothing
 * runs, nothing is fetched), a restore never modifies a source file even with the
 * `allowBroadGenerates` opt-in (memory and layout stores; the registry is covered by the entry
 * conformance suite), sources that match nothing warn, long task names are shortened.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLayoutStore, type OciStore } from '@task-cache/oci';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pushHostile, dir as tarDir, file as tarFile } from '../../test/hostile.js';
import { CacheRunError, InvalidOptionError } from '../errors.js';
import type { CacheEvent, CacheWarningEvent } from '../events/types.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import { createCache } from './cache.js';
import type { CacheOptions } from './types.js';

let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'tc-srcout-state-'));
});
afterAll(async () => {
  await rm(stateDir, { recursive: true, force: true });
});
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tc-srcout-'));
  dirs.push(dir);
  for (const [p, c] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), c);
  }
  return dir;
}
const cacheOf = (options: CacheOptions) => createCache({ stateDir, lock: false, ...options });
const LAYOUT = { 'src/main.ts': 'export {};\n', '.git/config': '[core]\n' };

function counted() {
  let calls = 0;
  const build = async ({ signal }: { signal: AbortSignal }) => {
    calls++;
    signal.throwIfAborted();
    return 'built';
  };
  return { build, calls: () => calls };
}

describe('generates and sources are validated before the build (issue 16)', () => {
  it.each([
    [['**'], /matches the whole task directory.*allowBroadGenerates/],
    [['*'], /matches the whole task directory/],
    [['**/*'], /matches the whole task directory/],
    [['.git/**'], /under \.git/],
    [['../outside/**'], /relative to the task directory, without "\.\."/],
    [['/abs/dist/**'], /relative to the task directory/],
  ])('generates %j is refused before the build, nothing fetched', async (generates, message) => {
    const store = countingStore(createMemoryStore());
    const dir = await project(LAYOUT);
    const b = counted();
    const err = await cacheOf({ store })
      .run({ task: 'build', dir, sources: ['src/**'], generates }, b.build)
      .catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.code).toBe('CACHE_ERR_INVALID_OPTION');
    expect(err.message).toMatch(message);
    expect(b.calls()).toBe(0);
    expect(store.counts.fetchManifest).toBe(0);
    expect(await readFile(join(dir, 'src/main.ts'), 'utf8')).toBe(LAYOUT['src/main.ts']);
  });

  it.each([['../shared/**'], ['/etc/**']])('sources %j is refused before the build', async (source) => {
    const dir = await project(LAYOUT);
    const b = counted();
    const err = await cacheOf({ store: createMemoryStore() })
      .run({ task: 'build', dir, sources: [source], generates: ['dist/**'] }, b.build)
      .catch((e) => e);
    expect(err).toMatchObject({ code: 'CACHE_ERR_INVALID_OPTION', field: 'sources' });
    expect(b.calls()).toBe(0);
  });

  it('generates matching a source file is refused before the build, naming both', async () => {
    const dir = await project(LAYOUT);
    const b = counted();
    const err = await cacheOf({ store: createMemoryStore() })
      .run({ task: 'build', dir, sources: ['src/**'], generates: ['dist/**', 'src/**'] }, b.build)
      .catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toMatch(/"src\/\*\*" matches the source file "src\/main.ts".*allowBroadGenerates/);
    expect(b.calls()).toBe(0);
  });
});

describe.each<[string, () => Promise<OciStore>]>([
  ['memory', async () => createMemoryStore()],
  [
    'oci-layout',
    async () => {
      const d = await mkdtemp(join(tmpdir(), 'tc-srcout-layout-'));
      dirs.push(d);
      return createLayoutStore(d);
    },
  ],
])('a restore never modifies a source file (%s store, issue 16)', (_name, makeStore) => {
  // Regression (issue 16): through cache.run(), a poisoned entry replaced src/main.ts with
  // `process.exit(13)` and the run reported `restored`.
  it('a poisoned entry under the run key is refused; the source stays, the build runs', async () => {
    const store = await makeStore();
    const events: CacheEvent[] = [];
    const cache = cacheOf({ store, onEvent: (e) => events.push(e) });
    const dir = await project({ ...LAYOUT, 'dist/old.js': 'old' });
    const o = {
      task: 'build',
      dir,
      sources: ['src/**'],
      generates: ['src/**', 'dist/**'],
      allowBroadGenerates: true,
    };
    const key = await cache.key(o);
    await pushHostile(store, key, [tarDir('src'), tarFile('src/main.ts', 'process.exit(13)')], {
      task: 'build',
    });
    const b = counted();
    const r = await cache.run(o, b.build);
    expect(r.status).not.toBe('restored');
    expect(b.calls()).toBe(1);
    expect(await readFile(join(dir, 'src/main.ts'), 'utf8')).toBe(LAYOUT['src/main.ts']);
    const w = events.find((e): e is CacheWarningEvent => e.type === 'warning');
    expect(w).toMatchObject({ code: 'RESTORE_FAILED', causeCode: 'CACHE_ERR_ENTRY_REFUSED' });
  });

  it('a good entry restores the outputs only, and the event counts the extra files removed', async () => {
    const store = await makeStore();
    const events: CacheEvent[] = [];
    const cache = cacheOf({ store, onEvent: (e) => events.push(e) });
    const o = { task: 'build', sources: ['src/**'], generates: ['**'], allowBroadGenerates: true };
    const producer = await project(LAYOUT);
    const saved = await cache.run({ ...o, dir: producer }, async () => {
      await mkdir(join(producer, 'dist'), { recursive: true });
      await writeFile(join(producer, 'dist/app.js'), 'app');
    });
    expect(saved.status).toBe('saved');
    const consumer = await project({ ...LAYOUT, 'dist/stale.js': 'stale', 'notes.txt': 'mine' });
    const b = counted();
    const restored = await cache.run({ ...o, dir: consumer }, b.build);
    expect(restored.status).toBe('restored');
    expect(b.calls()).toBe(0);
    expect(await readFile(join(consumer, 'dist/app.js'), 'utf8')).toBe('app');
    expect(await readFile(join(consumer, 'src/main.ts'), 'utf8')).toBe(LAYOUT['src/main.ts']);
    expect(await readFile(join(consumer, '.git/config'), 'utf8')).toBe(LAYOUT['.git/config']);
    // `generates: ['**']` with the opt-in: extra files are outputs, and a restore removes them.
    await expect(stat(join(consumer, 'dist/stale.js'))).rejects.toThrow();
    await expect(stat(join(consumer, 'notes.txt'))).rejects.toThrow();
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ removed: 2 });
  });
});

describe('new-user surprises (issue 16)', () => {
  it('sources that match nothing warn (SOURCES_EMPTY), and the build still runs', async () => {
    const dir = await project(LAYOUT);
    const events: CacheEvent[] = [];
    const b = counted();
    const r = await cacheOf({ store: createMemoryStore(), onEvent: (e) => events.push(e) }).run(
      { task: 'build', dir, sources: ['source/**'], generates: ['dist/**'] },
      b.build,
    );
    expect(b.calls()).toBe(1);
    expect(r.status).toBe('built');
    const w = events.find((e): e is CacheWarningEvent => e.type === 'warning');
    expect(w?.code).toBe('SOURCES_EMPTY');
    expect(w?.message).toMatch(/"source\/\*\*" match no file/);
  });

  it('sources that match nothing are an error in strict mode, before the build', async () => {
    const dir = await project(LAYOUT);
    const b = counted();
    const err = await cacheOf({ store: createMemoryStore(), strict: true })
      .run({ task: 'build', dir, sources: ['source/**'], generates: ['dist/**'] }, b.build)
      .catch((e) => e);
    expect(err).toBeInstanceOf(CacheRunError);
    expect(err.reason).toBe('SOURCES_EMPTY');
    expect(b.calls()).toBe(0);
  });

  it('core scratch directories are never part of the checksum', async () => {
    const dir = await project(LAYOUT);
    const cache = cacheOf({ store: createMemoryStore() });
    const o = { task: 'build', dir, sources: ['**'] };
    const before = await cache.key(o);
    await mkdir(join(dir, '.task-cache-restore-p1-abc/dist'), { recursive: true });
    await writeFile(join(dir, '.task-cache-restore-p1-abc/dist/big.bin'), 'leftover');
    expect(await cache.key(o)).toBe(before);
  });

  // Regression (issue 16): a task name over 63 characters made run() throw; the build never ran.
  it('a task name over 63 characters runs, with a shortened deterministic key', async () => {
    const dir = await project(LAYOUT);
    const cache = cacheOf({ store: createMemoryStore() });
    const task = `monorepo:packages/${'frontend-application-'.repeat(4)}build`;
    const b = counted();
    const r = await cache.run({ task, dir, sources: ['src/**'], generates: ['dist/**'] }, async (c) => {
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist/x'), 'x');
      return b.build(c);
    });
    expect(b.calls()).toBe(1);
    expect(r.status).toBe('saved');
    expect(r.key).toHaveLength(128);
    expect(r.key.startsWith('monorepo_packages_frontend-application-')).toBe(true);
    expect(await cache.key({ task, dir, sources: ['src/**'] })).toBe(r.key);
  });
});
