/**
 * `task-cache ls` and `task-cache inspect` through the built binary, on the embedded store.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, requireBuilt, sandbox } from './helpers.js';

let box: Awaited<ReturnType<typeof sandbox>>;
let key: string;
beforeAll(async () => {
  requireBuilt();
  box = await sandbox();
  await mkdir(join(box.project, 'src'), { recursive: true });
  await writeFile(join(box.project, 'src', 'a.txt'), 'a\n');
  const saved = await cli(
    [
      'run',
      '--json',
      '--task',
      'build',
      '--sources',
      'src/**',
      '--generates',
      'dist/**',
      '--',
      'sh',
      '-c',
      'mkdir -p dist; echo x > dist/x',
    ],
    box.project,
    box.env,
  );
  key = JSON.parse(saved.stdout).key;
  await cli(['run', '--task', 'other', '--', 'true'], box.project, box.env);
});
afterAll(() => box?.cleanup());

describe('task-cache ls / inspect', () => {
  it('ls lists the entries, --task one task, no pointer tags', async () => {
    const all = await cli(['ls'], box.project, box.env);
    expect(all.code).toBe(0);
    const tags = all.stdout.trim().split('\n');
    expect(tags).toContain(key);
    expect(tags.some((t) => t.startsWith('other-'))).toBe(true);
    expect(tags.filter((t) => t.endsWith('.latest'))).toEqual([]);
    const one = await cli(['ls', '--task', 'build', '--json'], box.project, box.env);
    expect(JSON.parse(one.stdout)).toEqual([key]);
  });

  it('inspect shows the entry without restoring it; a missing key exits 1', async () => {
    const r = await cli(['inspect', key, '--json'], box.project, box.env);
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout);
    // dist/x and the output log.
    expect(view).toMatchObject({ key, task: 'build', files: 2, chunks: 1 });
    expect(view).toMatchObject({ formatVersion: 2, blobs: 1 });
    expect(view.inputs).toEqual([{ path: 'src/a.txt', digest: expect.stringMatching(/^sha256:/) }]);
    const text = await cli(['inspect', key], box.project, box.env);
    expect(text.stdout).toMatch(/^files: +2$/m);
    expect(text.stdout).toMatch(/^blobs: +1 \(format v2: packs\)$/m);
    expect(text.stdout).toContain('src/a.txt');
    const missing = await cli(['inspect', 'build-nope'], box.project, box.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no entry build-nope');
    expect((await cli(['inspect'], box.project, box.env)).code).toBe(64);
  });
});
