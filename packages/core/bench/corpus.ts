/**
 * Benchmark corpora, generated once and kept (a `.complete` marker) under
 * `$TASK_CACHE_BENCH_DIR` (default: `<os tmpdir>/task-cache-bench`). Put it on tmpfs
 * (`TASK_CACHE_BENCH_DIR=/dev/shm/task-cache-bench`) to take the disk out of the figures.
 *
 * - `mixed`: ~1 GB output tree: 20 000 small text files (1–19 KiB of pseudo-JavaScript), 60
 *   JS bundles of 8 MiB, 4 incompressible binaries of 80 MiB. All bytes are distinct (no
 *   accidental dedup between files): text is generated token by token from a seeded PRNG.
 * - `small`: 20 000 files of exactly 4 KiB (the pack-rate test).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const benchRoot = process.env.TASK_CACHE_BENCH_DIR || join(tmpdir(), 'task-cache-bench');

/** xorshift32: fast, seeded, good enough for synthetic text. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

const KEYWORDS = [
  'const ',
  'let ',
  'function ',
  'return ',
  'if (',
  'else ',
  'for (',
  'await ',
  'async ',
  'export ',
  'import ',
  'new ',
  'this.',
  'typeof ',
  ' === ',
  ' !== ',
  ' && ',
  ' || ',
  ' => ',
  '(',
  ')',
  '{',
  '}',
  ';\n',
  ',\n  ',
  '.',
  ' = ',
  ' + ',
  '[',
  ']',
  "'",
  '"use strict";\n',
  'undefined',
  'null',
  'true',
  'false',
  '0',
  '1',
  'module.exports',
  'require(',
  'Promise.all(',
  'Object.assign(',
  'Array.from(',
];

function vocabulary(random: () => number): Buffer[] {
  const words: Buffer[] = KEYWORDS.map((k) => Buffer.from(k));
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$';
  for (let i = 0; i < 4000; i++) {
    let w = '';
    const n = 3 + (random() % 12);
    for (let j = 0; j < n; j++) w += letters[random() % letters.length];
    words.push(Buffer.from(w));
  }
  return words;
}

/** Pseudo-JavaScript text of exactly `size` bytes, from a shared vocabulary and a per-file seed. */
function text(size: number, random: () => number, vocab: Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  const kw = KEYWORDS.length;
  while (pos < size) {
    // Zipf-ish: keywords often, a few hundred identifiers most of the time, the rest rarely.
    const r = random();
    const pick =
      r % 10 < 4 ? r % kw : r % 10 < 8 ? kw + ((r >>> 8) % 300) : kw + ((r >>> 8) % (vocab.length - kw));
    const w = vocab[pick] as Buffer;
    const n = Math.min(w.byteLength, size - pos);
    w.copy(out, pos, 0, n);
    pos += n;
    if ((r & 0xf) === 0 && pos < size) out[pos++] = 0x0a;
  }
  return out;
}

function randomBytes(size: number, seed: number): Buffer {
  const key = createHash('sha256').update(`bench:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

async function writeMany(files: Array<[string, () => Buffer]>, parallel = 64): Promise<void> {
  for (let i = 0; i < files.length; i += parallel) {
    await Promise.all(files.slice(i, i + parallel).map(([p, make]) => writeFile(p, make())));
  }
}

/** Path of the small-text file the warm-save benchmark changes. */
export const CHANGED_FILE = 'dist/pages/p050/f10007.js';

/** The ~1 GB mixed tree (its task directory: outputs under `dist/`). */
export async function mixedCorpus(log: (s: string) => void = () => {}): Promise<string> {
  const dir = join(benchRoot, 'mixed-v1');
  if (existsSync(join(dir, '.complete'))) return dir;
  log(`generating the ~1 GB mixed corpus in ${dir} (once)…`);
  await rm(dir, { recursive: true, force: true });
  const random = rng(42);
  const vocab = vocabulary(random);
  const files: Array<[string, () => Buffer]> = [];
  for (let d = 0; d < 100; d++) {
    const sub = join(dir, 'dist/pages', `p${String(d).padStart(3, '0')}`);
    await mkdir(sub, { recursive: true });
    for (let i = d * 200; i < (d + 1) * 200; i++) {
      const r = rng(1000 + i);
      const size = 1024 + (r() % (18 * 1024));
      files.push([join(sub, `f${i}.js`), () => text(size, r, vocab)]);
    }
  }
  await mkdir(join(dir, 'dist/bundles'), { recursive: true });
  for (let i = 0; i < 60; i++) {
    const r = rng(500_000 + i);
    files.push([join(dir, 'dist/bundles', `chunk-${i}.js`), () => text(8 * 1024 * 1024, r, vocab)]);
  }
  await mkdir(join(dir, 'dist/assets'), { recursive: true });
  for (let i = 0; i < 4; i++) {
    files.push([join(dir, 'dist/assets', `blob-${i}.bin`), () => randomBytes(80 * 1024 * 1024, i)]);
  }
  await writeMany(files);
  await writeFile(join(dir, '.complete'), '');
  return dir;
}

/** 20 000 files of 4 KiB (outputs under `dist/`). */
export async function smallCorpus(log: (s: string) => void = () => {}): Promise<string> {
  const dir = join(benchRoot, 'small-v1');
  if (existsSync(join(dir, '.complete'))) return dir;
  log(`generating 20 000 × 4 KiB files in ${dir} (once)…`);
  await rm(dir, { recursive: true, force: true });
  const random = rng(7);
  const vocab = vocabulary(random);
  const files: Array<[string, () => Buffer]> = [];
  for (let d = 0; d < 100; d++) {
    const sub = join(dir, 'dist', `d${String(d).padStart(3, '0')}`);
    await mkdir(sub, { recursive: true });
    for (let i = d * 200; i < (d + 1) * 200; i++) {
      const r = rng(77_000 + i);
      files.push([join(sub, `f${i}.txt`), () => text(4096, r, vocab)]);
    }
  }
  await writeMany(files);
  await writeFile(join(dir, '.complete'), '');
  return dir;
}
