/**
 * Issue 16 (clean aborts): SIGINT or SIGTERM during a restore, wired to its `signal` as the README
 * shows, removes the staging directory at once and leaves the outputs as they were — in a real
 * child process, signalled while its staging exists.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLayoutStore } from '@task-cache/oci';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { expectedRuns, readEntry } from '../../test/v2.js';
import { saveEntry } from './save.js';

const CHILD = fileURLToPath(new URL('../../test/fixtures/signal-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

const MiB = 1024 * 1024;

// The child holds its second layer request until it is signalled. Version 1: 512 KiB in 16 KiB
// chunks, a request per chunk (restored on the calling thread). Version 2: 12 MiB in 256 KiB
// chunks, one pack read in two ranged runs of at most 8 MiB (restored by the workers); a small
// v2 entry is a single request, which would leave nothing to hold.
describe.each([
  { formatVersion: 1 as const, size: 256 * 1024, avgChunkSize: 16 * 1024 },
  { formatVersion: 2 as const, size: 6 * MiB, avgChunkSize: 256 * 1024 },
])('a signal wired to the restore removes its staging (issue 16; format v$formatVersion)', ({
  formatVersion,
  size,
  avgChunkSize,
}) => {
  it.each(['SIGINT', 'SIGTERM'] as const)('%s mid-restore', async (sig) => {
    const root = await tempDir('tc-signal-');
    dirs.push(root);
    const storeDir = join(root, 'store');
    const src = join(root, 'src');
    const dir = join(root, 'task');
    await writeTree(src, {
      'dist/a.bin': seededBytes(size, 1),
      'dist/b.bin': seededBytes(size, 2),
    });
    await writeTree(dir, { 'dist/old.js': 'previous build', 'src/main.ts': 'source' });
    const tag = `signal-${sig}`;
    const store = createLayoutStore(storeDir);
    const saved = await saveEntry(store, {
      dir: src,
      generates: ['dist/**'],
      tag,
      task: 'build',
      key: tag,
      avgChunkSize,
      stateDir: false,
      formatVersion,
    });
    expect(saved.chunksTotal).toBeGreaterThan(2);
    // At least two layer requests: one per chunk (v1), one per run (v2).
    const runs = formatVersion === 2 ? expectedRuns(await readEntry(store, tag)) : [];
    if (formatVersion === 2) expect(runs.length).toBeGreaterThan(1);
    const before = await treeHash(dir);

    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      cwd: ROOT,
      env: { ...process.env, TC_SIGNAL_CHILD: JSON.stringify({ storeDir, dir, tag }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('started')) resolve();
      });
      child.on('exit', () => reject(new Error(`child exited before the restore started: ${out} ${err}`)));
    });
    // The restore is under way: its staging exists.
    expect((await readdir(dir)).filter((n) => n.startsWith('.task-cache-restore-'))).toHaveLength(1);
    child.kill(sig);
    expect(await exited).toBe(0);
    expect(out).toContain(`aborted: interrupted by ${sig}`);
    expect((await readdir(dir)).filter((n) => n.startsWith('.task-cache-'))).toEqual([]);
    expect(await treeHash(dir)).toBe(before);
  });
});
