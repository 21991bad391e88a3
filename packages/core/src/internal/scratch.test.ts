import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCache } from '../run/cache.js';
import { createMemoryStore } from '../store/memory.js';
import { removeStaleStaging, STAGING_PREFIX, stagingPrefix } from './scratch.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function taskDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tc-scratch-'));
  dirs.push(d);
  return d;
}
/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}
async function staging(dir: string, name: string, ageMs = 0): Promise<string> {
  const p = join(dir, name);
  await mkdir(join(p, 'dist'), { recursive: true });
  await writeFile(join(p, 'dist/big.bin'), 'leftover');
  if (ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    await utimes(p, t, t);
  }
  return p;
}

// Regression (issue 16): Ctrl-C during a restore left a .task-cache-restore-* directory that no
// later run removed.
describe('stale restore staging', () => {
  it('removes the staging of a dead process of this host, keeps live ones and non-staging dirs', async () => {
    const dir = await taskDir();
    const own = basename(stagingPrefix(dir));
    const hostPart = own.slice(STAGING_PREFIX.length).split('-')[0];
    await staging(dir, `${STAGING_PREFIX}${hostPart}-${deadPid()}-aaaaaa`);
    await staging(dir, `${own}bbbbbb`); // this process: maybe a live restore
    await staging(dir, `${STAGING_PREFIX}${hostPart}-${process.ppid}-cccccc`); // live parent
    await staging(dir, '.task-cache-old-dddddd'); // a swap's set-aside: may hold outputs
    await mkdir(join(dir, 'dist'));
    expect(await removeStaleStaging(dir)).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(
      [
        `${own}bbbbbb`,
        `${STAGING_PREFIX}${hostPart}-${process.ppid}-cccccc`,
        '.task-cache-old-dddddd',
        'dist',
      ].sort(),
    );
  });

  it("removes another host's or an unnamed staging only once it is older than the stale age", async () => {
    const dir = await taskDir();
    await staging(dir, `${STAGING_PREFIX}ffffffff-1-old000`, 2 * 60 * 60 * 1000);
    await staging(dir, `${STAGING_PREFIX}XyZ123`, 2 * 60 * 60 * 1000); // the former mkdtemp name
    await staging(dir, `${STAGING_PREFIX}ffffffff-1-new000`);
    expect(await removeStaleStaging(dir)).toBe(2);
    expect(await readdir(dir)).toEqual([`${STAGING_PREFIX}ffffffff-1-new000`]);
  });

  it('the next run of the task removes a stale staging, whatever the run does', async () => {
    const dir = await taskDir();
    const hostPart = basename(stagingPrefix(dir)).slice(STAGING_PREFIX.length).split('-')[0];
    await staging(dir, `${STAGING_PREFIX}${hostPart}-${deadPid()}-zzzzzz`);
    await writeFile(join(dir, 'in.txt'), 'x');
    const stateDir = await taskDir();
    const cache = createCache({ store: createMemoryStore(), lock: false, stateDir });
    const r = await cache.run({ task: 't', dir, sources: ['in.txt'], generates: ['out/**'] }, () => 'v');
    expect(r.value).toBe('v');
    expect(await readdir(dir)).toEqual(['in.txt']);
  });

  it('never throws for a missing directory', async () => {
    expect(await removeStaleStaging(join(tmpdir(), 'tc-scratch-missing-dir-x'))).toBe(0);
  });
});
