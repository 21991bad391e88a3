import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCache } from '../run/cache.js';
import { createMemoryStore } from '../store/memory.js';

// cache.explain() on the memory store: what it reports when the previous entry is gone or never
// recorded its inputs (the registry cases are in trust/trust.integration.test.ts).

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function temp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

describe('cache.explain', () => {
  it('no previous entry, then the entry, then "expired" once the remembered entry is gone', async () => {
    const store = createMemoryStore();
    const stateDir = await temp('tc-explain-state-');
    const dir = await temp('tc-explain-');
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src/a.ts'), 'a');
    const cache = createCache({ store, lock: false, stateDir });
    const o = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
    try {
      expect((await cache.explain(o)).previous).toEqual({ status: 'none' });
      const saved = await cache.run(o, async () => {
        await mkdir(join(dir, 'dist'), { recursive: true });
        await writeFile(join(dir, 'dist/x'), 'x');
      });
      await writeFile(join(dir, 'src/b.ts'), 'b');
      const e = await cache.explain(o);
      expect(e.previous).toMatchObject({ status: 'found', key: saved.key });
      expect(e.changes).toEqual([{ input: 'source', change: 'added', path: 'src/b.ts' }]);

      // The entry (and with it the pointer tag, on the same manifest) expires.
      const top = await store.fetchManifest(saved.key);
      await store.deleteManifest(top!.descriptor.digest);
      expect((await cache.explain(o)).previous).toEqual({ status: 'expired', key: saved.key });
    } finally {
      await cache.close();
    }
  });

  it('an entry saved under a caller-chosen key records no inputs: "not-recorded"', async () => {
    const store = createMemoryStore();
    const dir = await temp('tc-explain-');
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src/a.ts'), 'a');
    const cache = createCache({ store, lock: false, stateDir: await temp('tc-explain-state-') });
    const o = { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] };
    try {
      await cache.run({ ...o, key: 'fixed-key' }, async () => {
        await mkdir(join(dir, 'dist'), { recursive: true });
        await writeFile(join(dir, 'dist/x'), 'x');
      });
      expect((await cache.explain(o)).previous).toEqual({ status: 'not-recorded', key: 'fixed-key' });
    } finally {
      await cache.close();
    }
  });
});
