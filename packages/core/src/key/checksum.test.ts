import { chmod, cp, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CacheConfigError } from '../config/errors.js';
import { checksum, checksumDetailed } from './checksum.js';

const dirs: string[] = [];
async function tree(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tc-key-'));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const base = {
  'src/a.ts': 'export const a = 1;\n',
  'src/lib/b.ts': 'export const b = 2;\n',
  'README.md': 'x',
};
const sources = ['src/**'];

describe('checksum', () => {
  it('is 64 lowercase hex characters without prefix', async () => {
    const dir = await tree(base);
    expect(await checksum({ dir, sources })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes when a source file content changes', async () => {
    const dir = await tree(base);
    const before = await checksum({ dir, sources });
    await writeFile(join(dir, 'src/a.ts'), 'export const a = 2;\n');
    expect(await checksum({ dir, sources })).not.toBe(before);
  });

  it('changes when a source file is renamed (same content)', async () => {
    const a = await tree(base);
    const { 'src/a.ts': content, ...rest } = base;
    const b = await tree({ ...rest, 'src/c.ts': content });
    expect(await checksum({ dir: b, sources })).not.toBe(await checksum({ dir: a, sources }));
  });

  it('changes when the executable bit changes', async () => {
    const dir = await tree(base);
    const before = await checksum({ dir, sources });
    await chmod(join(dir, 'src/a.ts'), 0o755);
    const after = await checksum({ dir, sources });
    expect(after).not.toBe(before);
    await chmod(join(dir, 'src/a.ts'), 0o644);
    expect(await checksum({ dir, sources })).toBe(before);
  });

  it('does not change with mtimes or the absolute location of the checkout', async () => {
    const dir = await tree(base);
    const before = await checksum({ dir, sources });
    await utimes(join(dir, 'src/a.ts'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect(await checksum({ dir, sources })).toBe(before);
    const other = await mkdtemp(join(tmpdir(), 'tc-key-elsewhere-'));
    dirs.push(other);
    await cp(dir, join(other, 'deeper', 'checkout'), { recursive: true });
    expect(await checksum({ dir: join(other, 'deeper', 'checkout'), sources })).toBe(before);
  });

  it('ignores files outside the globs', async () => {
    const dir = await tree(base);
    const before = await checksum({ dir, sources });
    await writeFile(join(dir, 'README.md'), 'changed');
    expect(await checksum({ dir, sources })).toBe(before);
  });

  it('mixes in commands, env, tools, platform and extra, each changing the key', async () => {
    const dir = await tree(base);
    const plain = await checksum({ dir, sources });
    const variants = await Promise.all([
      checksum({ dir, sources, commands: ['./build.sh'] }),
      checksum({ dir, sources, env: ['NODE_ENV'], envValues: { NODE_ENV: 'production' } }),
      checksum({ dir, sources, env: ['NODE_ENV'], envValues: {} }),
      checksum({ dir, sources, env: ['NODE_ENV'], envValues: { NODE_ENV: '' } }),
      checksum({ dir, sources, tools: { node: 'v24.0.0' } }),
      checksum({ dir, sources, platform: 'linux-x64' }),
      checksum({ dir, sources, extra: ['v2'] }),
    ]);
    expect(new Set([plain, ...variants]).size).toBe(variants.length + 1);
    // order of tools and env names does not matter; order of commands does
    expect(await checksum({ dir, sources, tools: { a: '1', b: '2' } })).toBe(
      await checksum({ dir, sources, tools: { b: '2', a: '1' } }),
    );
    expect(await checksum({ dir, sources, commands: ['a', 'b'] })).not.toBe(
      await checksum({ dir, sources, commands: ['b', 'a'] }),
    );
  });

  it('hashes symlinks by their target and lists files sorted', async () => {
    const dir = await tree(base);
    await symlink('a.ts', join(dir, 'src/link.ts'));
    const { files } = await checksumDetailed({ dir, sources });
    expect(files.map((f) => `${f.kind} ${f.path}`)).toEqual([
      '- src/a.ts',
      '- src/lib/b.ts',
      'l src/link.ts',
    ]);
  });

  it('streams large files and is independent of the concurrency', async () => {
    const dir = await tree(base);
    await writeFile(join(dir, 'src/big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
    expect(await checksum({ dir, sources, concurrency: 1 })).toBe(
      await checksum({ dir, sources, concurrency: 16 }),
    );
  });

  it('rejects bad input with a typed error naming the option', async () => {
    await expect(checksum({ dir: '', sources })).rejects.toThrow(CacheConfigError);
    await expect(checksum({ dir: '/tmp', sources: 'src/**' as never })).rejects.toThrow(/sources/);
    await expect(checksum({ dir: '/tmp', sources, concurrency: 0 })).rejects.toThrow(/concurrency/);
  });

  it('stops when the signal fires', async () => {
    const dir = await tree(base);
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(checksum({ dir, sources, signal: ac.signal })).rejects.toThrow('stop');
  });
});
