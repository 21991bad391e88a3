import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fingerprintPath, isUpToDate, readFingerprint, writeFingerprint } from '../src/fingerprint.js';

describe('.task fingerprint', () => {
  it('stores the checksum under .task/checksum/<task> and decides up-to-date from it and the outputs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fp-'));
    const opts = {
      rootDir: root,
      dir: root,
      task: 'ci:build',
      checksum: 'abc',
      sources: ['src/**'],
      generates: ['dist/**'],
    };
    expect(await readFingerprint(root, 'ci:build')).toBeUndefined();
    expect(await isUpToDate(opts)).toBe(false);

    await writeFingerprint(root, 'ci:build', 'abc');
    expect(fingerprintPath(root, 'ci:build')).toBe(join(root, '.task', 'checksum', 'ci-build'));
    expect(await readFile(fingerprintPath(root, 'ci:build'), 'utf8')).toBe('abc\n');
    expect(await isUpToDate(opts)).toBe(false); // outputs missing

    await mkdir(join(root, 'dist'));
    await writeFile(join(root, 'dist', 'out.js'), 'x');
    expect(await isUpToDate(opts)).toBe(true);
    expect(await isUpToDate({ ...opts, checksum: 'changed' })).toBe(false);
    expect(await isUpToDate({ ...opts, sources: [] })).toBe(false); // no sources: always runs, as in Task
  });
});
