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
import { saveEntry } from './save.js';

const CHILD = fileURLToPath(new URL('../../test/fixtures/signal-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

describe('a signal wired to the restore removes its staging (issue 16)', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('%s mid-restore', async (sig) => {
    const root = await tempDir('tc-signal-');
    dirs.push(root);
    const storeDir = join(root, 'store');
    const src = join(root, 'src');
    const dir = join(root, 'task');
    await writeTree(src, {
      'dist/a.bin': seededBytes(256 * 1024, 1),
      'dist/b.bin': seededBytes(256 * 1024, 2),
    });
    await writeTree(dir, { 'dist/old.js': 'previous build', 'src/main.ts': 'source' });
    const tag = `signal-${sig}`;
    const saved = await saveEntry(createLayoutStore(storeDir), {
      dir: src,
      generates: ['dist/**'],
      tag,
      task: 'build',
      key: tag,
      avgChunkSize: 16 * 1024,
      stateDir: false,
    });
    expect(saved.chunksTotal).toBeGreaterThan(2);
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
