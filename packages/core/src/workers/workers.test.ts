import { createHash } from 'node:crypto';
import { chmod, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { chunk, packOutputs } from '../../test/reference-pack.js';
import { EntryCorruptError, EntryOutputsError, EntryRefusedError, EntryTooLargeError } from '../errors.js';
import { chunkParams } from '../internal/chunk.js';
import { listOutputs } from '../internal/outputs.js';
import { frameContentSize, hasNodeZstd } from '../internal/zstd.js';
import { createCodecPool } from './codec-pool.js';
import { extractInWorker } from './extract.js';
import { packChunks } from './pack.js';

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

async function fixture(): Promise<string> {
  const dir = await tempDir('tc-workers-');
  dirs.push(dir);
  const files: Record<string, string | Uint8Array> = {
    'dist/a.txt': 'hello\n',
    'dist/empty': '',
    'dist/ünï/日本語.txt': 'こんにちは',
    [`dist/${'long-directory/'.repeat(10)}${'x'.repeat(150)}.js`]: 'long',
    'dist/big.bin': seededBytes(3 * 1024 * 1024 + 17, 1),
    'dist/text.js': 'export const x = 1;\n'.repeat(50_000),
    'src/ignored.ts': 'no',
  };
  for (let i = 0; i < 300; i++) files[`dist/small/f${i}.txt`] = `file ${i}\n`.repeat(i % 7);
  await writeTree(dir, files);
  await chmod(join(dir, 'dist/a.txt'), 0o755);
  await mkdir(join(dir, 'dist/empty-dir'));
  await symlink('a.txt', join(dir, 'dist/link'));
  await symlink(`${'long-directory/'.repeat(9)}${'y'.repeat(120)}`, join(dir, 'dist/long-link'));
  return dir;
}

async function streamingChunks(dir: string, avg: number): Promise<string[]> {
  const outputs = await listOutputs(dir, ['dist/**']);
  const packed = packOutputs(dir, outputs, { keepMtimes: false });
  const out: string[] = [];
  for await (const c of chunk(packed.stream, chunkParams(avg))) out.push(sha(c.data));
  return out;
}

async function workerChunks(
  dir: string,
  avg: number,
  slots?: number,
  digest?: (data: Uint8Array) => Promise<string>,
): Promise<string[]> {
  const job = packChunks({
    dir,
    generates: ['dist/**'],
    keepMtimes: false,
    chunking: chunkParams(avg),
    slots,
    ...(digest ? { digest } : {}),
  });
  const out: string[] = [];
  for await (const c of job.chunks) {
    expect(sha(c.data)).toBe(c.digest);
    out.push(c.digest);
    c.release();
  }
  expect(job.stats.files).toBeGreaterThan(300);
  return out;
}

describe('pack worker', () => {
  it('gives the same chunks as the tar-stream packer + chunker (byte-identical archive)', async () => {
    const dir = await fixture();
    for (const avg of [1024, 64 * 1024, 1024 * 1024]) {
      const expected = await streamingChunks(dir, avg);
      expect(expected.length).toBeGreaterThan(avg === 1024 * 1024 ? 2 : 20);
      expect(await workerChunks(dir, avg, avg === 1024 ? 1 : undefined)).toEqual(expected);
    }
  });

  it('with `digest`, the chunks are hashed off the pack worker (codec workers): same chunks, same digests', async () => {
    const dir = await fixture();
    const pool = createCodecPool(2);
    let calls = 0;
    try {
      for (const avg of [1024, 64 * 1024]) {
        const expected = await streamingChunks(dir, avg);
        const got = await workerChunks(dir, avg, avg === 1024 ? 2 : 8, (data) => {
          calls++;
          return pool.digest(data);
        });
        expect(got).toEqual(expected);
      }
      expect(calls).toBeGreaterThan(20);
      // A digest that fails fails the job (the chunk is never handed out unhashed).
      const job = packChunks({
        dir,
        generates: ['dist/**'],
        keepMtimes: false,
        chunking: chunkParams(1024),
        digest: () => Promise.reject(new Error('hash failed')),
      });
      await expect(
        (async () => {
          for await (const c of job.chunks) c.release();
        })(),
      ).rejects.toThrow('hash failed');
    } finally {
      await pool.close();
    }
  });

  it('reports outputs it cannot hold as EntryOutputsError', async () => {
    const dir = await tempDir('tc-workers-');
    dirs.push(dir);
    await writeTree(dir, { 'dist/a': 'a' });
    await symlink('/etc/passwd', join(dir, 'dist/escape'));
    const job = packChunks({ dir, generates: ['dist/**'], keepMtimes: false, chunking: chunkParams(1024) });
    const consume = async () => {
      for await (const c of job.chunks) c.release();
    };
    await expect(consume()).rejects.toBeInstanceOf(EntryOutputsError);
  });

  it('stops on abort and the worker serves the next job', async () => {
    const dir = await fixture();
    const ac = new AbortController();
    const job = packChunks({
      dir,
      generates: ['dist/**'],
      keepMtimes: false,
      chunking: chunkParams(1024),
      signal: ac.signal,
    });
    let n = 0;
    const consume = async () => {
      for await (const c of job.chunks) {
        c.release();
        if (++n === 3) ac.abort(new Error('stop'));
      }
    };
    await expect(consume()).rejects.toThrow('stop');
    expect(await workerChunks(dir, 64 * 1024)).toEqual(await streamingChunks(dir, 64 * 1024));
  });
});

describe('codec pool', () => {
  const codecs = hasNodeZstd() ? (['node', 'zstd-codec'] as const) : (['zstd-codec'] as const);
  const pool = createCodecPool(2);
  afterAll(() => pool.close());

  it.each(codecs)('%s: round trip, with verification of size and digest', async (codec) => {
    const data = Buffer.from('export const x = 1;\n'.repeat(40_000));
    const { output, digest } = await pool.compress(codec, data, 3);
    expect(output.byteLength).toBeLessThan(data.byteLength / 10);
    expect(digest).toBe(sha(output));
    // every codec reads what every other one wrote
    for (const reader of codecs) {
      const back = await pool.decompress(reader, Uint8Array.from(output), data.byteLength, sha(data), 0);
      expect(Buffer.from(back).equals(data)).toBe(true);
    }
    await expect(
      pool.decompress(codec, Uint8Array.from(output), data.byteLength, sha(Buffer.from('x')), 7),
    ).rejects.toThrow(/chunk 7 has uncompressed digest/);
    await expect(
      pool.decompress(codec, Uint8Array.from(output), data.byteLength - 1, sha(data), 0),
    ).rejects.toBeInstanceOf(EntryTooLargeError);
    await expect(
      pool.decompress(codec, Uint8Array.from([1, 2, 3, 4, 5, 6, 7]), 10, sha(data), 0),
    ).rejects.toBeInstanceOf(EntryCorruptError);
    expect(pool.stats.compress).toBeGreaterThan(0);
  });

  it.each(
    codecs,
  )('%s: into shared slots (as save and restore use it): same frames, same checks', async (codec) => {
    const slot = () => new Uint8Array(new SharedArrayBuffer(2 * 1024 * 1024));
    const text = Buffer.from('export const y = 2;\n'.repeat(30_000));
    const random = seededBytes(700_000, 9);
    for (const data of [text, random, Buffer.from('z')]) {
      const plain = await pool.compress(codec, data, 3);
      const into = slot();
      const framed = await pool.compress(codec, data, 3, into);
      // written in place, byte-identical to the returned frame, declaring its size
      expect(framed.output.buffer).toBe(into.buffer);
      expect(Buffer.from(framed.output).equals(Buffer.from(plain.output))).toBe(true);
      expect(framed.digest).toBe(sha(framed.output));
      expect(frameContentSize(framed.output)).toBe(data.byteLength);
      // NOTE: a fresh copy per call: the pool transfers (detaches) an input that owns its buffer.
      const frame = () => Uint8Array.from(framed.output);
      for (const reader of codecs) {
        const out = slot();
        const back = await pool.decompress(reader, frame(), data.byteLength, sha(data), 0, undefined, out);
        expect(back.buffer).toBe(out.buffer);
        expect(Buffer.from(back).equals(data)).toBe(true);
        await expect(
          pool.decompress(reader, frame(), data.byteLength - 1, sha(data), 0, undefined, slot()),
        ).rejects.toBeInstanceOf(EntryTooLargeError);
        await expect(
          pool.decompress(reader, frame(), data.byteLength, sha(Buffer.from('x')), 3, undefined, slot()),
        ).rejects.toThrow(/chunk 3 has uncompressed digest/);
      }
    }
    // truncated and garbage frames are corrupt; the worker keeps working afterwards
    const framed = await pool.compress(codec, text, 3, slot());
    const truncated = Uint8Array.from(framed.output.subarray(0, framed.output.byteLength - 9));
    await expect(
      pool.decompress(codec, truncated, text.byteLength, sha(text), 0, undefined, slot()),
    ).rejects.toBeInstanceOf(EntryCorruptError);
    await expect(
      pool.decompress(codec, Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9]), 10, sha(text), 0, undefined, slot()),
    ).rejects.toBeInstanceOf(EntryCorruptError);
    const again = await pool.decompress(
      codec,
      Uint8Array.from(framed.output),
      text.byteLength,
      sha(text),
      0,
      undefined,
      slot(),
    );
    expect(Buffer.from(again).equals(text)).toBe(true);
  });

  it.each(
    codecs,
  )('%s: an input whose buffer was already transferred is refused, not hung on', async (codec) => {
    const data = Buffer.from('q'.repeat(5000));
    const { output } = await pool.compress(codec, data, 3);
    const input = Uint8Array.from(output);
    await pool.decompress(codec, input, data.byteLength, sha(data), 0);
    expect(input.byteLength).toBe(0); // transferred
    await expect(pool.decompress(codec, input, data.byteLength, sha(data), 0)).rejects.toBeInstanceOf(
      EntryCorruptError,
    );
    const back = await pool.decompress(codec, Uint8Array.from(output), data.byteLength, sha(data), 0);
    expect(Buffer.from(back).equals(data)).toBe(true);
  });

  it.each(codecs)('%s: frames declare their content size; empty chunks round-trip', async (codec) => {
    const data = Buffer.from('abc'.repeat(1000));
    const { output } = await pool.compress(codec, data, 3);
    expect(frameContentSize(output)).toBe(data.byteLength);
    const empty = await pool.compress(codec, new Uint8Array(0), 3);
    for (const reader of codecs) {
      const back = await pool.decompress(reader, Uint8Array.from(empty.output), 0, sha(new Uint8Array(0)), 0);
      expect(back.byteLength).toBe(0);
    }
  });

  it('compresses from shared memory', async () => {
    const sab = new SharedArrayBuffer(1 << 20);
    const view = new Uint8Array(sab, 4096, 100_000);
    view.fill(7);
    const { output } = await pool.compress(codecs[0], view, 3);
    const back = await pool.decompress(codecs[0], output, 100_000, sha(new Uint8Array(100_000).fill(7)), 0);
    expect(back.byteLength).toBe(100_000);
  });
});

describe('extract worker', () => {
  it('extracts what the packer wrote (pieces of any size), byte-identical', async () => {
    const src = await fixture();
    for (const avg of [1024, 256 * 1024]) {
      const dst = await tempDir('tc-workers-x-');
      dirs.push(dst);
      const job = packChunks({
        dir: src,
        generates: ['dist/**'],
        keepMtimes: false,
        chunking: chunkParams(avg),
      });
      async function* copies() {
        for await (const c of job.chunks) {
          const copy = Uint8Array.from(c.data);
          c.release();
          yield copy;
        }
      }
      const entries = await extractInWorker(dst, copies(), { generates: ['dist/**'], keepMtimes: false });
      expect(entries.length).toBeGreaterThan(300);
      // extraction writes into staging only; modes of directories are applied by the swap
      expect(await treeHash(dst, 'dist/small')).toBe(await treeHash(src, 'dist/small'));
      const { readFile } = await import('node:fs/promises');
      expect(
        (await readFile(join(dst, 'dist/big.bin'))).equals(await readFile(join(src, 'dist/big.bin'))),
      ).toBe(true);
    }
  });

  async function archive(add: (p: tar.Pack) => void): Promise<Uint8Array[]> {
    const p = tar.pack();
    add(p);
    p.finalize();
    const parts: Uint8Array[] = [];
    for await (const b of p as unknown as AsyncIterable<Uint8Array>) parts.push(Uint8Array.from(b));
    return parts;
  }
  async function* from(parts: Uint8Array[]) {
    yield* parts;
  }

  it.each([
    ['a hardlink', (p: tar.Pack) => p.entry({ name: 'dist/h', type: 'link', linkname: 'dist/a' })],
    ['../escape', (p: tar.Pack) => p.entry({ name: 'dist/../../escape', type: 'file' }, 'x')],
    ['a setuid file', (p: tar.Pack) => p.entry({ name: 'dist/s', type: 'file', mode: 0o4755 }, 'x')],
    ['a path outside generates', (p: tar.Pack) => p.entry({ name: 'src/x', type: 'file' }, 'x')],
    [
      'a file through a symlink',
      (p: tar.Pack) => {
        p.entry({ name: 'dist/l', type: 'symlink', linkname: '.' });
        p.entry({ name: 'dist/l/x', type: 'file' }, 'x');
      },
    ],
  ])('refuses %s with EntryRefusedError', async (_n, add) => {
    const dst = await tempDir('tc-workers-x-');
    dirs.push(dst);
    const parts = await archive(add);
    await expect(
      extractInWorker(dst, from(parts), { generates: ['dist/**'], keepMtimes: false }),
    ).rejects.toBeInstanceOf(EntryRefusedError);
  });

  it('reports a truncated archive as EntryCorruptError', async () => {
    const dst = await tempDir('tc-workers-x-');
    dirs.push(dst);
    const parts = await archive((p) => p.entry({ name: 'dist/f', type: 'file' }, 'x'.repeat(5000)));
    const all = Buffer.concat(parts);
    await expect(
      extractInWorker(dst, from([Uint8Array.from(all.subarray(0, 2000))]), {
        generates: ['dist/**'],
        keepMtimes: false,
      }),
    ).rejects.toBeInstanceOf(EntryCorruptError);
  });
});

describe('worker threads never keep the process alive', () => {
  it(
    'a process that saved and restored exits by itself (regression: an unused codec worker held it)',
    { timeout: 60_000 },
    async () => {
      const src = await tempDir('tc-workers-exit-');
      const dst = await tempDir('tc-workers-exit-');
      dirs.push(src, dst);
      await writeTree(src, { 'dist/a.txt': 'a' });
      const child = fileURLToPath(new URL('../../test/fixtures/exit-child.ts', import.meta.url));
      const { spawn } = await import('node:child_process');
      const code = await new Promise<number | null>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', child, src, dst], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        p.on('error', reject);
        // A hang shows as this test's timeout.
        p.on('exit', (c) => resolve(c));
      });
      expect(code).toBe(0);
    },
  );
});
