/**
 * The extract worker with its write worker (issue 7): small files are created by a second
 * thread. Covers the hand-over end to end (bytes, modes, mtimes, order of records), failures on
 * the writer's side, abort, and the write worker's own protocol.
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir } from '../../test/helpers.js';
import { archive as tarOf } from '../../test/hostile.js';
import { EntryRefusedError } from '../errors.js';
import { extractInWorker } from './extract.js';
import { spawnWorker } from './spawn.js';
import {
  type SmallFile,
  WCTRL_FILES,
  WCTRL_FREED,
  WCTRL_LENGTH,
  WCTRL_STOP,
  type WriteRequest,
  type WriteResponse,
} from './write-protocol.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});
async function fresh(prefix = 'tc-extract-'): Promise<string> {
  const d = await tempDir(prefix);
  dirs.push(d);
  return d;
}

interface Spec {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  body?: Buffer;
  mode?: number;
  mtime?: Date;
  linkname?: string;
}

/** The archive of `specs` (tar-stream's packer, as the hostile-entry builder). */
const archive = (specs: readonly Spec[]): Promise<Buffer> =>
  tarOf(
    specs.map((s) => ({
      header: { name: s.name, type: s.type ?? 'file', mode: s.mode, mtime: s.mtime, linkname: s.linkname },
      data: s.body,
    })),
  );

/**
 * Pieces of shared memory, as restore hands them over. Every piece the worker gave back is
 * overwritten at once: a file created from a released piece (bytes not copied out) would show.
 */
function pieces(all: Buffer, sizes: readonly number[]) {
  let released = 0;
  async function* gen() {
    let off = 0;
    for (let i = 0; off < all.byteLength; i++) {
      const n = Math.min(sizes[i % sizes.length] as number, all.byteLength - off);
      const view = new Uint8Array(new SharedArrayBuffer(n));
      view.set(all.subarray(off, off + n));
      off += n;
      yield view;
    }
  }
  return {
    source: gen(),
    onWritten: (piece: Uint8Array) => {
      piece.fill(0xa5);
      released++;
    },
    released: () => released,
  };
}

const MODES = [0o644, 0o755, 0o600, 0o444, 0o400, 0o640];

/** Many small files across directories, a few large ones, sizes at the hand-over bound. */
function manySmall(count: number): Spec[] {
  const specs: Spec[] = [];
  for (let i = 0; i < count; i++) {
    const size = i % 97 === 0 ? 0 : (i * 7919) % 20_000;
    specs.push({
      name: `dist/d${i % 37}/sub${i % 5}/f${i}.js`,
      body: seededBytes(size, i),
      mode: MODES[i % MODES.length],
      mtime: new Date(1_600_000_000_000 + i * 1000),
    });
    if (i % 500 === 250) {
      // at and around the small-file bound (256 KiB), and well above it
      for (const size of [256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 * 1024 * 1024 + 5])
        specs.push({ name: `dist/big/b${i}-${size}.bin`, body: seededBytes(size, i + size), mode: 0o644 });
    }
  }
  return specs;
}

/** Paths under `dir` that this process has open (any thread). */
async function openUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) out.push(target);
  }
  return out;
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`;
      out.push(p);
      if ((await lstat(join(dir, p))).isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out;
}

describe('extract worker with its write worker', () => {
  it.each([
    ['1 MiB pieces', [1024 * 1024]],
    ['pieces of 7 KiB to 300 KiB (bodies split across pieces)', [7 * 1024 + 3, 64 * 1024, 300 * 1024]],
  ])('many small files across directories: byte-identical, modes and mtimes, records in archive order (%s)', async (_n, sizes) => {
    const specs = manySmall(3000);
    const all = await archive(specs);
    const root = await fresh();
    const staging = join(root, 'staging');
    await mkdir(staging);
    const feed = pieces(all, sizes);
    const entries = await extractInWorker(staging, feed.source, {
      generates: ['dist/**'],
      keepMtimes: true,
      onWritten: feed.onWritten,
    });
    // `done` comes only after the writer confirmed every file: all exist the moment it resolves
    // (checked synchronously, last first).
    expect([...specs].reverse().filter((s) => !existsSync(join(staging, s.name)))).toEqual([]);
    expect(feed.released()).toBeGreaterThan(0);
    const files = entries.filter((e) => e.type === 'file');
    expect(files.map((e) => e.path)).toEqual(specs.map((s) => s.name));
    for (const s of specs) {
      const p = join(staging, s.name);
      const [st, bytes] = await Promise.all([stat(p), readFile(p)]);
      expect(bytes.equals(s.body as Buffer), s.name).toBe(true);
      expect((st.mode & 0o777).toString(8), s.name).toBe((s.mode ?? 0o644).toString(8));
      if (s.mtime) expect(st.mtimeMs, s.name).toBe(s.mtime.getTime());
    }
    expect(await readdir(root)).toEqual(['staging']);
    expect(await openUnder(root)).toEqual([]);
  });

  it('a writer-side failure (a file already in staging, a symlink planted there) is the typed fs error; nothing is written outside staging', async () => {
    // NOTE: all in one piece. The first 64 small files of an entry stay with the extract worker
    // (the writer starts at the 65th); the 60 after them all go to the writer (it never has 64
    // files queued, the bound below which a directory is handed over). So the planted paths are
    // hit by the writer's `open`: its first file and its last (whose failure must come before
    // `done`).
    const specs: Spec[] = Array.from({ length: 124 }, (_, i) => ({
      name: i < 64 ? `dist/pre/f${i}.js` : `dist/w${i % 6}/f${i}.js`,
      body: seededBytes(100 + i * 37, i),
      mode: 0o644,
    }));
    const all = await archive(specs);
    for (const victim of [64, 123]) {
      const root = await fresh();
      const staging = join(root, 'staging');
      const outside = join(root, 'outside');
      await mkdir(outside);
      for (const planted of ['file', 'symlink'] as const) {
        await removeDir(staging);
        await mkdir(staging);
        const name = (specs[victim] as Spec).name;
        const target = join(staging, name);
        await mkdir(join(target, '..'), { recursive: true });
        if (planted === 'file') await writeFile(target, 'already here');
        else await symlink(join(outside, 'escaped'), target);
        const feed = pieces(all, [1024 * 1024]);
        const err = await extractInWorker(staging, feed.source, {
          generates: ['dist/**'],
          keepMtimes: false,
          onWritten: feed.onWritten,
        }).then(
          () => undefined,
          (e: unknown) => e as NodeJS.ErrnoException,
        );
        expect(err).toBeInstanceOf(Error);
        expect(err?.code).toBe('EEXIST');
        expect(err?.syscall).toBe('open');
        expect(err?.path).toBe(target);
        expect(await readdir(outside)).toEqual([]);
        expect((await readdir(root)).sort()).toEqual(['outside', 'staging']);
        if (planted === 'file') expect(await readFile(target, 'utf8')).toBe('already here');
        else expect(await readlink(target)).toBe(join(outside, 'escaped'));
        expect(await openUnder(root)).toEqual([]);
      }
    }
    // the same worker (and its writer) serve the next extraction
    const staging = join(await fresh(), 'ok');
    await mkdir(staging);
    const more = manySmall(400);
    const entries = await extractInWorker(staging, pieces(await archive(more), [1024 * 1024]).source, {
      generates: ['dist/**'],
      keepMtimes: false,
    });
    expect(entries.filter((e) => e.type === 'file')).toHaveLength(more.length);
  });

  it('a refusal after many handed-over files stops both threads and leaves nothing open', async () => {
    const specs: Spec[] = [
      ...manySmall(1500),
      { name: 'dist/h', type: 'file', mode: 0o4755, body: Buffer.from('x') },
    ];
    const root = await fresh();
    const staging = join(root, 'staging');
    await mkdir(staging);
    const all = await archive(specs);
    await expect(
      extractInWorker(staging, pieces(all, [1024 * 1024]).source, {
        generates: ['dist/**'],
        keepMtimes: false,
      }),
    ).rejects.toBeInstanceOf(EntryRefusedError);
    expect(await openUnder(root)).toEqual([]);
    const before = await listTree(staging);
    await new Promise((r) => setTimeout(r, 50));
    expect(await listTree(staging)).toEqual(before);
  });

  it('abort mid-extraction: rejects with the reason, nothing is open or written afterwards, the next extraction works', async () => {
    const specs = manySmall(3000);
    const all = await archive(specs);
    const root = await fresh();
    const staging = join(root, 'staging');
    await mkdir(staging);
    const ac = new AbortController();
    const feed = pieces(all, [512 * 1024]);
    let n = 0;
    async function* stopping() {
      for await (const p of feed.source) {
        if (++n === 8) ac.abort(new Error('stop here'));
        yield p;
      }
    }
    await expect(
      extractInWorker(staging, stopping(), {
        generates: ['dist/**'],
        keepMtimes: false,
        signal: ac.signal,
        onWritten: feed.onWritten,
      }),
    ).rejects.toThrow('stop here');
    expect(await openUnder(root)).toEqual([]);
    const before = await listTree(staging);
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(specs.length);
    await new Promise((r) => setTimeout(r, 50));
    expect(await listTree(staging)).toEqual(before);
    const next = join(root, 'next');
    await mkdir(next);
    const entries = await extractInWorker(next, pieces(all, [1024 * 1024]).source, {
      generates: ['dist/**'],
      keepMtimes: false,
    });
    expect(entries.filter((e) => e.type === 'file')).toHaveLength(specs.length);
  });
});

describe('worker threads never keep the process alive', () => {
  it('a process that extracted many small files (extract and write workers started) exits by itself', async () => {
    const staging = await fresh('tc-extract-exit-');
    const child = fileURLToPath(new URL('../../test/fixtures/extract-exit-child.ts', import.meta.url));
    const { spawn } = await import('node:child_process');
    let out = '';
    const code = await new Promise<number | null>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, staging], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      p.stdout.on('data', (d) => {
        out += d;
      });
      p.on('error', reject);
      // A hang shows as this test's timeout.
      p.on('exit', (c) => resolve(c));
    });
    expect(code).toBe(0);
    expect(out.trim()).toBe('300');
    expect((await readdir(join(staging, 'dist/d1'))).length).toBe(100);
  });
});

describe('write worker', () => {
  function session(w: Worker) {
    const inbox: WriteResponse[] = [];
    let wake: (() => void) | undefined;
    w.on('message', (m: WriteResponse) => {
      inbox.push(m);
      wake?.();
    });
    return {
      send: (m: WriteRequest, transfer: ArrayBuffer[] = []) => w.postMessage(m, transfer),
      async next(): Promise<WriteResponse> {
        while (inbox.length === 0)
          await new Promise<void>((r) => {
            wake = r;
          });
        return inbox.shift() as WriteResponse;
      },
    };
  }
  /** Writes a batch of 10-byte files (file i holds bytes i + 1) at `offset` of `ring`. */
  function batch(ring: SharedArrayBuffer, offset: number, dir: string, names: string[], mode = 0o640) {
    const bytes = new Uint8Array(ring);
    const files: SmallFile[] = names.map((n, i) => {
      bytes.fill(i + 1, offset + i * 10, offset + i * 10 + 10);
      return { target: join(dir, n), offset: offset + i * 10, size: 10, mode };
    });
    return { files, span: names.length * 10 };
  }

  it('creates each file (O_EXCL, mode after the bytes), counts down the files, frees the span', async () => {
    const dir = await fresh('tc-write-');
    const w = spawnWorker('write');
    try {
      const s = session(w);
      const ring = new SharedArrayBuffer(256);
      const start = (id: number) => {
        const c = new Int32Array(new SharedArrayBuffer(WCTRL_LENGTH * 4));
        s.send({ op: 'start', id, control: c.buffer as SharedArrayBuffer, ring });
        return c;
      };
      const control = start(1);
      Atomics.store(control, WCTRL_FILES, 3);
      s.send({ op: 'batch', id: 1, ...batch(ring, 100, dir, ['a', 'b', 'c'], 0o444) });
      expect(await s.next()).toEqual({ op: 'written', id: 1 });
      expect(Atomics.load(control, WCTRL_FILES)).toBe(0);
      expect(Atomics.load(control, WCTRL_FREED)).toBe(30);
      for (const [i, n] of ['a', 'b', 'c'].entries()) {
        expect([...(await readFile(join(dir, n)))]).toEqual(Array(10).fill(i + 1));
        expect((await stat(join(dir, n))).mode & 0o777).toBe(0o444);
      }
      // an existing file is never overwritten: the first failure is reported, later batches dropped
      s.send({ op: 'batch', id: 1, ...batch(ring, 0, dir, ['d', 'a', 'e']) });
      s.send({ op: 'batch', id: 1, ...batch(ring, 30, dir, ['f']) });
      s.send({ op: 'stop', id: 1 });
      const e = await s.next();
      expect(e).toMatchObject({
        op: 'error',
        id: 1,
        error: { kind: 'fs', code: 'EEXIST', syscall: 'open', path: join(dir, 'a') },
      });
      expect(await s.next()).toEqual({ op: 'stopped', id: 1 });
      expect((await readdir(dir)).sort()).toEqual(['a', 'b', 'c', 'd']);
      // the stop flag: nothing more of the job is written
      const c2 = start(2);
      Atomics.store(c2, WCTRL_STOP, 1);
      s.send({ op: 'batch', id: 2, ...batch(ring, 0, dir, ['g', 'h']) });
      s.send({ op: 'stop', id: 2 });
      expect(await s.next()).toEqual({ op: 'stopped', id: 2 });
      expect((await readdir(dir)).sort()).toEqual(['a', 'b', 'c', 'd']);
    } finally {
      await w.terminate();
    }
  });
});
