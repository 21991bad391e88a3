/**
 * Issue 16 §6: a file-system failure of this machine (disk full, permission, a file-size limit)
 * during a restore is a typed {@link CacheFsError} naming the call, the path and the errno, and
 * the outputs stay as they were. Real: a child process restores under `ulimit -f` (the kernel
 * answers EFBIG, as it answers ENOSPC on a full disk — root ignores permissions, so EACCES cannot
 * be provoked here).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLayoutStore } from '@task-cache/oci';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, runChild, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { asCacheFsError, CacheFsError, EntryRefusedError, TaskCacheError } from '../errors.js';
import { saveEntry } from './save.js';

const CHILD = fileURLToPath(new URL('../../test/fixtures/fs-limit-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

describe('CacheFsError', () => {
  it('wraps a raw Node file-system error with its errno, syscall and path; leaves others alone', () => {
    const raw = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      syscall: 'write',
      path: '/w/dist/a.bin',
    });
    const e = asCacheFsError(raw, 'restore') as CacheFsError;
    expect(e).toBeInstanceOf(CacheFsError);
    expect(e).toBeInstanceOf(TaskCacheError);
    expect(e).toMatchObject({
      code: 'CACHE_ERR_FS',
      errno: 'ENOSPC',
      syscall: 'write',
      path: '/w/dist/a.bin',
    });
    expect(e.message).toBe('restore: write on "/w/dist/a.bin" failed: no space left on the device [ENOSPC]');
    expect(e.cause).toBe(raw);
    // Not a file-system error: unchanged.
    const plain = new Error('x');
    expect(asCacheFsError(plain, 'save')).toBe(plain);
    const typed = new EntryRefusedError('no');
    expect(asCacheFsError(typed, 'save')).toBe(typed);
    const noSyscall = Object.assign(new Error('y'), { code: 'ECONNRESET' });
    expect(asCacheFsError(noSyscall, 'save')).toBe(noSyscall);
  });

  it('an unknown errno still names the code', () => {
    const e = asCacheFsError(Object.assign(new Error('z'), { code: 'EWEIRD', syscall: 'open' }), 'save');
    expect((e as Error).message).toBe('save: open failed: the file system refused it [EWEIRD]');
  });
});

describe('a restore that the machine cannot write (issue 16 §6)', () => {
  it('a file-size limit (EFBIG) → CacheFsError, the outputs as they were, no staging left', async () => {
    const root = await tempDir('tc-fs-');
    dirs.push(root);
    const storeDir = join(root, 'store');
    const src = join(root, 'src');
    const dir = join(root, 'task');
    await writeTree(src, { 'dist/big.bin': seededBytes(4 * 1024 * 1024, 7), 'dist/small.txt': 'small' });
    await writeTree(dir, { 'dist/old.js': 'previous build', 'src/main.ts': 'source' });
    const tag = 'fs-limit';
    await saveEntry(createLayoutStore(storeDir), {
      dir: src,
      generates: ['dist/**'],
      tag,
      task: 'build',
      key: tag,
      stateDir: false,
    });
    const before = await treeHash(dir);

    // `ulimit -f 1024`: no file over 1 MiB may be written by the child.
    const { code, err, lastLine } = await runChild(
      'bash',
      ['-c', 'ulimit -f 1024 && exec "$0" --import tsx "$1"', process.execPath, CHILD],
      { cwd: ROOT, env: { ...process.env, TC_FS_CHILD: JSON.stringify({ storeDir, dir, tag }) } },
    );
    expect(code, err).toBe(0);
    const result = JSON.parse(lastLine || '{}') as Record<string, unknown>;
    expect(result, err).toMatchObject({
      name: 'CacheFsError',
      code: 'CACHE_ERR_FS',
      isCacheFsError: true,
      errno: 'EFBIG',
    });
    expect(result.message).toMatch(
      /^restore: write on "dist\/big\.bin" failed: the file is larger than .* \[EFBIG\]$/,
    );
    expect(await treeHash(dir)).toBe(before);
    expect((await readdir(dir)).filter((n) => n.startsWith('.task-cache-restore'))).toEqual([]);
  });
});
