import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createCache } from '../run/cache.js';
import type { RunResult } from '../run/types.js';
import { readCounters, statsFile } from './log.js';

// Accounting across processes: a run here and a run in a child process share a state dir (and
// the embedded store of one cache dir); `cache.stats()` adds both up, `cache.summary()` lists
// this instance's runs.

const CHILD = fileURLToPath(new URL('../../test/fixtures/stats-child.ts', import.meta.url));
const run$ = promisify(execFile);
const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function temp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
async function project(): Promise<string> {
  const dir = await temp('tc-stats-');
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src/app.ts'), 'export {};\n');
  return dir;
}

describe('stats and summary', () => {
  it('counts hits, misses, time saved and bytes per task and store across processes', async () => {
    const home = await temp('tc-stats-home-');
    const env = { HOME: home, TASK_CACHE_DIR: await temp('tc-stats-cache-') };
    const stateDir = await temp('tc-stats-state-');
    const dir = await project();
    const cache = createCache({ lock: false, stateDir, env });
    let saved: RunResult;
    try {
      saved = await cache.run(
        { task: 'build', dir, sources: ['src/**'], generates: ['dist/**'] },
        async () => {
          await new Promise((r) => setTimeout(r, 50));
          await mkdir(join(dir, 'dist'), { recursive: true });
          await writeFile(join(dir, 'dist/out.txt'), 'out');
        },
      );
      expect(saved.status).toBe('saved');

      const other = await project();
      const { stdout } = await run$(process.execPath, ['--import', 'tsx', CHILD], {
        env: { ...process.env, TC_CHILD: JSON.stringify({ dir: other, stateDir, env }) },
      });
      const hit = JSON.parse(stdout) as RunResult;
      expect(hit.status).toBe('restored');
      expect(hit.timeSavedMs).toBeGreaterThanOrEqual(0);

      const [counters, ...rest] = await cache.stats();
      expect(rest).toEqual([]);
      expect(counters).toMatchObject({
        task: 'build',
        runs: 2,
        hits: 1,
        misses: 1,
        timeSavedMs: Math.round(hit.timeSavedMs ?? -1),
        bytesPushed: saved.stats.bytesPushed,
        bytesPulled: hit.stats.bytesFetched,
      });
      expect(counters?.bytesPulled).toBeGreaterThan(0);
      expect(counters?.buildMs).toBeGreaterThanOrEqual(50);

      const file = join(await temp('tc-stats-out-'), 'summary.json');
      const summary = await cache.summary({ file });
      expect(summary.runs).toHaveLength(1);
      expect(summary.runs[0]).toMatchObject({
        task: 'build',
        key: saved.key,
        status: 'saved',
        missReason: 'not-found',
      });
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(JSON.parse(JSON.stringify(summary)));
      expect(summary.totals).toMatchObject([{ task: 'build', runs: 1, misses: 1 }]);
    } finally {
      await cache.close();
    }
    expect(await readFile(statsFile(stateDir), 'utf8')).toMatch(/^(\{.*\}\n){2}$/);
  });

  it('a torn line (a process killed mid-write) is skipped; a missing log is no runs', async () => {
    const stateDir = await temp('tc-stats-torn-');
    expect(await readCounters(stateDir)).toEqual([]);
    await mkdir(join(stateDir, 'stats'));
    const line = JSON.stringify({ v: 1, task: 't', store: 's', status: 'restored', timeSavedMs: 5 });
    await writeFile(statsFile(stateDir), `${line}\n{"v":1,"task":"t","sto`);
    expect(await readCounters(stateDir)).toMatchObject([
      { task: 't', store: 's', runs: 1, hits: 1, timeSavedMs: 5 },
    ]);
  });
});
