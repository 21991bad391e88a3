/**
 * Bounded memory (issue 7): saving a 2 GB generated output, and restoring it, each run in a
 * fresh child process (fixtures/big-child.ts) whose peak RSS (`process.resourceUsage().maxRSS`,
 * worker threads included) must stay far below the output's size. A behaviour bound, not a
 * timing.
 *
 * NOTE: the child runs the TypeScript sources, so each of its 4–5 threads also loads tsx (and
 * tsx's module-hooks thread): ~100 MB the published package does not have. The bound here is
 * therefore 512 MB (a pipeline that held the output would need > 2 GB); the 300 MB target of
 * issue 7 is measured on the compiled package by the benchmark (bench/run.ts, docs/benchmarks.md).
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../test/helpers.js';

const CHILD = fileURLToPath(new URL('./fixtures/big-child.ts', import.meta.url));
const FILES = 8;
const FILE_SIZE = 256 * 1024 * 1024;
const LIMIT = 512 * 1024 * 1024;
let root: string | undefined;
afterAll(async () => {
  if (root) await removeDir(root);
});

/** Writes `size` seeded pseudo-random bytes (incompressible, distinct per seed), streaming. */
async function writeSeeded(path: string, size: number, seed: number): Promise<void> {
  const key = createHash('sha256').update(`big:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  const out = createWriteStream(path);
  for (let done = 0; done < size; done += zeros.byteLength) {
    const piece = cipher.update(zeros.subarray(0, Math.min(zeros.byteLength, size - done)));
    if (!out.write(piece)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

interface ChildResult {
  result?: { bytesTotal?: number; files?: number };
  maxRssBytes: number;
}

/** Runs one operation in a fresh process (its peak RSS is its own, worker threads included). */
async function runChild(args: Record<string, string>): Promise<ChildResult> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, TC_BIG: JSON.stringify(args) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`child exited with ${code}: ${text}`)),
    );
  });
  return JSON.parse(out.trim().split('\n').at(-1) as string) as ChildResult;
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const p of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) h.update(p as Buffer);
  return h.digest('hex');
}

it(
  'saving a 2 GB output and restoring it each keep peak RSS bounded (< 512 MB from the TypeScript sources)',
  { timeout: 1_200_000 },
  async () => {
    root = await tempDir('tc-bigmem-');
    const src = join(root, 'src');
    const dst = join(root, 'dst');
    await mkdir(join(src, 'dist'), { recursive: true });
    await mkdir(dst);
    for (let i = 0; i < FILES; i++) await writeSeeded(join(src, 'dist', `part-${i}.bin`), FILE_SIZE, i);

    const layout = join(root, 'layout');
    const saved = await runChild({ op: 'save', src, dst, layout });
    const restored = await runChild({ op: 'restore', src, dst, layout });
    expect(saved.result?.bytesTotal).toBeGreaterThan(FILES * FILE_SIZE);
    expect(restored.result?.files).toBe(FILES);
    // Shown in the test output, for the record (the bound is the assertion).
    console.log(
      `peak RSS: save ${(saved.maxRssBytes / 1e6).toFixed(0)} MB, restore ${(restored.maxRssBytes / 1e6).toFixed(0)} MB (Node ${process.version}, from sources)`,
    );
    expect(saved.maxRssBytes).toBeLessThan(LIMIT);
    expect(restored.maxRssBytes).toBeLessThan(LIMIT);
    for (let i = 0; i < FILES; i++) {
      const name = join('dist', `part-${i}.bin`);
      expect(await fileDigest(join(dst, name))).toBe(await fileDigest(join(src, name)));
    }
  },
);
