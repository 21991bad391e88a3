import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../errors.js';
import { createCache } from '../cache.js';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'tc-warm-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("warm start (fallback: 'latest')", () => {
  it('restores the previous outputs before the build, reports a miss, and the save pushes only changed chunks', async () => {
    const cache = createCache({ store: `oci-layout:${join(work, 'layout')}`, stateDir: join(work, 'state') });
    const dir = join(work, 'project');
    await mkdir(join(dir, 'src'), { recursive: true });
    const state = randomBytes(6 * 1024 * 1024); // the incremental state, unchanged by the second build
    const task = {
      task: 'tsc',
      dir,
      sources: ['src/**'],
      generates: ['dist/**'],
      fallback: 'latest' as const,
    };

    await writeFile(join(dir, 'src', 'a.ts'), 'export const a = 1;\n');
    const cold = await cache.run(task, async () => {
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist', 'state.bin'), state);
      await writeFile(join(dir, 'dist', 'a.js'), 'export const a = 1;\n');
    });
    expect(cold.status).toBe('saved');
    expect(cold.restoredFrom).toBeUndefined();

    // A new checkout: no outputs; the sources changed.
    await rm(join(dir, 'dist'), { recursive: true });
    await writeFile(join(dir, 'src', 'a.ts'), 'export const a = 2;\n');
    let sawState = false;
    const warm = await cache.run(task, async () => {
      // The build sees the previous outputs (and would reuse its state).
      sawState = (await readFile(join(dir, 'dist', 'state.bin'))).equals(state);
      await writeFile(join(dir, 'dist', 'a.js'), 'export const a = 2;\n');
    });
    expect(sawState).toBe(true);
    expect(warm.status).toBe('saved');
    expect(warm.key).not.toBe(cold.key);
    expect(warm.restoredFrom).toBe(cold.key);
    expect(warm.stats.chunksPushed).toBeLessThan(warm.stats.chunksTotal);

    // Without the option, a miss builds from the outputs as they are.
    await rm(join(dir, 'dist'), { recursive: true });
    await writeFile(join(dir, 'src', 'a.ts'), 'export const a = 3;\n');
    const plain = await cache.run({ ...task, fallback: undefined }, async () => {
      expect(existsSync(join(dir, 'dist'))).toBe(false);
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist', 'a.js'), 'export const a = 3;\n');
    });
    expect(plain.restoredFrom).toBeUndefined();
    await cache.close();
  });

  it('a first run with nothing to start from builds cold; a bad fallback is refused', async () => {
    const cache = createCache({ store: 'memory://warm-first', stateDir: join(work, 'state') });
    const dir = join(work, 'p');
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'src', 'x'), 'x');
    const o = { task: 'first', dir, sources: ['src/**'], generates: ['out/**'], fallback: 'latest' as const };
    const r = await cache.run(o, async () => {
      await mkdir(join(dir, 'out'), { recursive: true });
      await writeFile(join(dir, 'out', 'x'), 'x');
    });
    expect(r).toMatchObject({ status: 'saved' });
    expect(r.restoredFrom).toBeUndefined();
    await expect(cache.run({ ...o, fallback: 'newest' as 'latest' }, () => undefined)).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
    await cache.close();
  });
});
