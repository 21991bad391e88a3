import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasNodeZstd } from '../internal/zstd.js';

// Issue 14: a task runner starts one process per task, so what `import('@task-cache/core')` loads
// is paid by every task. These tests list the modules a fresh process loads.
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/fixtures/loads-child.ts', import.meta.url));

interface ChildReport {
  status: string;
  reason?: string;
  afterImport: string[];
  afterRun: string[];
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tc-lazy-load-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Runs the child (tsx, from the repository root) with its own HOME and cache directory. */
async function runChild(mode: 'save' | 'hit'): Promise<ChildReport> {
  const env = {
    ...process.env,
    TASK_CACHE_DIR: join(work, 'cache'),
    HOME: join(work, 'home'),
    XDG_CACHE_HOME: join(work, 'home', '.cache'),
  };
  const out = join(work, `loads-${mode}.txt`);
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, join(work, 'project'), out], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as ChildReport;
}

/** The loaded modules that belong to `pkg` (a dependency in node_modules). */
const ofPackage = (loaded: string[], pkg: string) =>
  loaded.filter((p) => p.includes(`/node_modules/${pkg}/`) || p.includes(`\\node_modules\\${pkg}\\`));
/** Core's worker modules (their drivers and the worker code). */
const workerModules = (loaded: string[]) => loaded.filter((p) => /packages\/core\/src\/workers\//.test(p));

const HEAVY = ['undici', 'tar-stream', 'hash-wasm', 'zstd-codec'];

describe('what a fresh process loads (issue 14)', () => {
  let saved: ChildReport;
  let hit: ChildReport;
  beforeAll(async () => {
    saved = await runChild('save');
    // The outputs are gone: the next run restores them from the entry.
    await rm(join(work, 'project', 'dist'), { recursive: true, force: true });
    hit = await runChild('hit');
  });

  it('the check sees the modules a save needs (the control)', () => {
    expect(saved.status).toBe('saved');
    expect(saved.afterRun.some((p) => p.includes('/packages/core/src/entry/save.ts'))).toBe(true);
    expect(ofPackage(saved.afterRun, 'tinyglobby').length).toBeGreaterThan(0);
  });

  it('a small default-run MISS+SAVE loads no worker code: packed, compressed and hashed on this thread', () => {
    expect(saved.status).toBe('saved');
    // The pack worker's own code, run inline (the control that the check sees the pack at all).
    expect(saved.afterRun.some((p) => p.includes('/packages/core/src/workers/pack-core.ts'))).toBe(true);
    // No worker driver, so no worker started, and no worker entry module.
    expect(
      saved.afterRun.filter((p) => /src\/workers\/(spawn|codec-pool|pack|extract)\.ts$/.test(p)),
    ).toEqual([]);
    expect(saved.afterRun.filter((p) => /\.worker\.ts$/.test(p))).toEqual([]);
    for (const pkg of ['undici', 'hash-wasm']) expect(ofPackage(saved.afterRun, pkg)).toEqual([]);
    if (hasNodeZstd()) expect(ofPackage(saved.afterRun, 'zstd-codec')).toEqual([]);
  });

  it("import('@task-cache/core') loads no HTTP client, tar, zstd or hashing WASM, and no worker code", () => {
    for (const report of [saved, hit]) {
      expect(report.afterImport.some((p) => p.includes('/packages/core/src/index.ts'))).toBe(true);
      for (const pkg of HEAVY) expect(ofPackage(report.afterImport, pkg)).toEqual([]);
      expect(workerModules(report.afterImport)).toEqual([]);
      // Neither the save nor the restore code: they load on the first call.
      expect(report.afterImport.filter((p) => /src\/entry\/(save|restore)\.ts$/.test(p))).toEqual([]);
    }
  });

  it('a default-run hit on the embedded store loads no HTTP client, no hashing WASM and no worker code', () => {
    expect(hit.status).toBe('restored');
    for (const pkg of ['undici', 'hash-wasm']) expect(ofPackage(hit.afterRun, pkg)).toEqual([]);
    // The save code stays unloaded on a hit.
    expect(hit.afterRun.filter((p) => /src\/entry\/save\.ts$/.test(p))).toEqual([]);
    // A small entry restores on this thread: no worker driver loaded, so no worker started.
    expect(hit.afterRun.some((p) => p.includes('/packages/core/src/entry/restore-inline.ts'))).toBe(true);
    expect(hit.afterRun.filter((p) => /src\/workers\/(spawn|codec-pool|extract)\.ts$/.test(p))).toEqual([]);
    // No zstd-codec (WebAssembly) on a small hit: node:zlib where it has zstd, else fzstd (plain
    // JavaScript, no WebAssembly set-up) for the entry's small chunk.
    expect(ofPackage(hit.afterRun, 'zstd-codec')).toEqual([]);
    if (!hasNodeZstd()) expect(ofPackage(hit.afterRun, 'fzstd')).not.toEqual([]);
  });
});
