/**
 * Unit tests of the team policy in ../src/policy.ts against the in-memory store wrapped by
 * countingStore(): they assert what reached the store (pushes, tags), not just the status.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CountingStore,
  countingStore,
  createCache,
  createMemoryStore,
  type RunResult,
} from '@task-cache/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PolicyEnv, SIZE_CAP, teamPolicy } from '../src/policy.js';

let dir: string;
let store: CountingStore;
let builds: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'policy-'));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'main.ts'), 'export const answer = 42;\n');
  store = countingStore(createMemoryStore());
  builds = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** One cached run of a small "compile" task under `env`, with no lock (unit test). */
async function runTask(env: PolicyEnv, outputBytes = 1000): Promise<RunResult> {
  // stateDir: the cache's own files (remembered bases) stay in the test's temp dir, not under HOME.
  const cache = createCache({ store, lock: false, stateDir: join(dir, '.state'), ...teamPolicy(env) });
  try {
    return await cache.run(
      { task: 'compile', dir, sources: ['src/**'], generates: ['dist/**'] },
      async () => {
        builds++;
        await mkdir(join(dir, 'dist'), { recursive: true });
        await writeFile(join(dir, 'dist', 'main.js'), 'x'.repeat(outputBytes));
      },
    );
  } finally {
    await cache.close();
  }
}

const pushes = () => store.counts.pushBlob + store.counts.pushManifest + store.counts.tag;

const MAIN: PolicyEnv = {};
const PR: PolicyEnv = { GITHUB_EVENT_NAME: 'pull_request' };

describe('team cache policy', () => {
  it('main branch: a miss builds and saves; the next run is a hit that pushes nothing', async () => {
    const miss = await runTask(MAIN);
    expect(miss.status).toBe('saved');
    expect(builds).toBe(1);
    expect(store.counts.pushBlob).toBeGreaterThan(0);
    expect(store.counts.tag + store.counts.pushManifest).toBeGreaterThan(0);

    await rm(join(dir, 'dist'), { recursive: true });
    store.resetCounts();
    const hit = await runTask(MAIN);
    expect(hit.status).toBe('restored');
    expect(builds).toBe(1);
    expect(pushes()).toBe(0);
    expect(await readFile(join(dir, 'dist', 'main.js'), 'utf8')).toHaveLength(1000);
  });

  it.each([
    ['GitHub', { GITHUB_EVENT_NAME: 'pull_request' }],
    ['GitHub (target)', { GITHUB_EVENT_NAME: 'pull_request_target' }],
    ['GitLab', { CI_MERGE_REQUEST_IID: '17' }],
  ])('pull request (%s): a miss builds and pushes nothing', async (_name, env) => {
    const result = await runTask(env);
    expect(result).toMatchObject({ status: 'built', reason: 'read-only' });
    expect(builds).toBe(1);
    expect(pushes()).toBe(0);
  });

  it('pull request: still restores what main saved, and pushes nothing', async () => {
    await runTask(MAIN);
    await rm(join(dir, 'dist'), { recursive: true });
    store.resetCounts();
    const result = await runTask(PR);
    expect(result.status).toBe('restored');
    expect(builds).toBe(1);
    expect(pushes()).toBe(0);
  });

  it('NO_BUILD_CACHE: just builds, and never touches the store', async () => {
    await runTask(MAIN); // an entry exists …
    await rm(join(dir, 'dist'), { recursive: true });
    store.resetCounts();
    const result = await runTask({ NO_BUILD_CACHE: '1' });
    expect(result).toMatchObject({ status: 'built', reason: 'disabled' });
    expect(builds).toBe(2); // … and is not used
    expect(Object.values(store.counts).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('size cap: an output over the cap is built but never tagged', async () => {
    const result = await runTask(MAIN, SIZE_CAP + 1);
    expect(result.status).toBe('built');
    expect(['entry-too-large', 'policy']).toContain(result.reason);
    expect(store.counts.tag + store.counts.pushManifest).toBe(0);
    // Nothing was committed: the next run misses and builds again.
    await rm(join(dir, 'dist'), { recursive: true });
    expect((await runTask(MAIN, SIZE_CAP + 1)).status).toBe('built');
    expect(builds).toBe(2);
  });

  it('an output just under the cap is saved', async () => {
    expect((await runTask(MAIN, SIZE_CAP - 4096)).status).toBe('saved');
  });

  it('release builds never restore, and save their own result', async () => {
    await runTask(MAIN);
    await rm(join(dir, 'dist'), { recursive: true });
    store.resetCounts();
    const result = await runTask({ RELEASE: 'true' });
    expect(result.status).not.toBe('restored');
    expect(builds).toBe(2);
  });
});
