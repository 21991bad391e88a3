/**
 * Chunk reuse (issue 7): a save reuses the stored descriptor of every chunk whose uncompressed
 * digest its base entry already has — no compression, no existence check, no upload — on the
 * in-memory store and on the real registry.
 */
import { appendFile, cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createOciBackend, type OciBackend, type OciStore } from '@task-cache/oci';
import { type RegistryFixture, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { pointerTag } from '../internal/base.js';
import { hasNodeZstd } from '../internal/zstd.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import { codecPool } from '../workers/codec-pool.js';
import { resolveEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';
import type { SaveEntryOptions } from './types.js';

let root: string;
let reg: RegistryFixture;
const backends: OciBackend[] = [];
let seq = 0;

beforeAll(async () => {
  root = await tempDir('tc-reuse-');
  reg = await startRegistry({ mode: 'anonymous' });
});
afterAll(async () => {
  for (const b of backends) await b.close();
  await reg?.close();
  await removeDir(root);
});

/** A task directory with ~2.5 MB of outputs (text and binary) → ~40 chunks of 64 KiB average. */
async function project(): Promise<string> {
  const dir = join(root, `p${++seq}`);
  const files: Record<string, string | Uint8Array> = {
    'dist/bundle.js': Array.from(
      { length: 20_000 },
      (_, i) => `export function f${i}(a, b) { return a * ${i} + b; }\n`,
    ).join(''),
    'dist/data.bin': seededBytes(1024 * 1024, seq),
  };
  for (let i = 0; i < 50; i++) files[`dist/pages/p${i}.html`] = `<p>page ${i}</p>\n`.repeat(100 + i);
  await writeTree(dir, files);
  return dir;
}

const compressions = () => codecPool().stats.compress;

const stores: Array<[string, () => OciStore]> = [
  ['memory store', () => createMemoryStore()],
  [
    'real registry',
    () => {
      const b = createOciBackend({ url: reg.ociUrl(`reuse/r${++seq}`) });
      backends.push(b);
      return b;
    },
  ],
];

describe.each(stores)('chunk reuse: %s', (_name, makeStore) => {
  const opts = (dir: string, tag: string, extra: Partial<SaveEntryOptions> = {}): SaveEntryOptions => ({
    dir,
    generates: ['dist/**'],
    tag,
    key: tag,
    task: 'build',
    avgChunkSize: 64 * 1024,
    stateDir: join(root, `state-${seq}`),
    // NOTE: the codec workers count the compressions; the inline save (issue 14) reuses the same way.
    inlineBelow: 0,
    ...extra,
  });

  it('a save whose chunks are all in the base compresses and uploads nothing but config, manifest and tag', async () => {
    const store = countingStore(makeStore());
    const dir = await project();
    const c0 = compressions();
    const first = await saveEntry(store, opts(dir, 'v1'));
    expect(first.chunksTotal).toBeGreaterThan(20);
    expect(first.chunksPushed).toBe(first.chunksTotal);
    expect(compressions() - c0).toBe(first.chunksTotal); // the counter does count

    store.resetCounts();
    const c1 = compressions();
    const second = await saveEntry(store, opts(dir, 'v2'));
    expect(compressions() - c1).toBe(0);
    expect(second.chunksPushed).toBe(0);
    expect(second.chunksTotal).toBe(first.chunksTotal);
    expect(store.counts.pushBlob).toBe(1); // the config (its creation time differs)
    expect(store.counts.blobExists).toBeLessThanOrEqual(1); // at most the config's check
    expect(store.counts.pushManifest).toBe(1);
    expect(store.counts.tag).toBe(1); // the pointer tag
    expect(second.bytesPushed).toBeLessThan(20_000);

    const dst = join(root, `dst${++seq}`);
    await mkdir(dst, { recursive: true });
    expect(
      await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag: 'v2', stateDir: false }),
    ).toBeDefined();
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(dir, 'dist'));
  });

  it('a fresh workspace (nothing remembered) finds the base through the pointer tag; one changed file → ≤ 3 chunks', async () => {
    const store = countingStore(makeStore());
    const a = await project();
    await saveEntry(store, opts(a, 'v1', { stateDir: false }));
    const pointer = await store.fetchManifest(pointerTag('build'));
    expect(pointer).toBeDefined();

    // another checkout of the same task, one file changed
    const b = join(root, `copy${++seq}`);
    await cp(a, b, { recursive: true });
    await appendFile(join(b, 'dist/pages/p25.html'), 'changed\n');
    store.resetCounts();
    const c0 = compressions();
    const second = await saveEntry(store, opts(b, 'v2', { stateDir: false }));
    const compressed = compressions() - c0;
    expect(compressed).toBeGreaterThanOrEqual(1);
    expect(compressed).toBeLessThanOrEqual(3);
    expect(second.chunksPushed).toBe(compressed);
    expect(store.counts.blobExists).toBeLessThanOrEqual(compressed + 1);
    // the pointer moved to the new entry
    expect((await store.fetchManifest(pointerTag('build')))?.descriptor.digest).toBe(second.digest);
  });

  it('base: false compresses everything again (control: the reuse above is what saved the work)', async () => {
    const store = makeStore();
    const dir = await project();
    const first = await saveEntry(store, opts(dir, 'v1'));
    const c0 = compressions();
    await saveEntry(store, opts(dir, 'v2', { base: false }));
    expect(compressions() - c0).toBe(first.chunksTotal);
  });
});

describe('reuse across zstd implementations', () => {
  // NOTE: on Node 20 there is no node:zlib zstd, so the second save also uses zstd-codec; the
  // test then still shows that reused chunks are neither compressed nor checked (no HEAD).
  const second = hasNodeZstd() ? 'node' : 'zstd-codec';
  it.each([
    1, 2,
  ] as const)(`an entry compressed with zstd-codec is reused by a save compressing with ${second}: unchanged chunks are not re-uploaded (format v%i)`, async (formatVersion) => {
    const store = countingStore(createMemoryStore());
    const dir = await project();
    const common = {
      generates: ['dist/**'],
      task: 'cross',
      avgChunkSize: 64 * 1024,
      stateDir: join(root, `xs${seq}`),
      // NOTE: the codec workers count the compressions (see opts).
      inlineBelow: 0,
      formatVersion,
    };
    const first = await saveEntry(store, { ...common, dir, tag: 'z1', key: 'z1', codec: 'zstd-codec' });
    await appendFile(join(dir, 'dist/pages/p10.html'), 'changed\n');
    store.resetCounts();
    const c0 = compressions();
    const next = await saveEntry(store, { ...common, dir, tag: 'n1', key: 'n1', codec: second });
    expect(next.formatVersion).toBe(formatVersion);
    expect(compressions() - c0).toBeLessThanOrEqual(3);
    expect(next.chunksPushed).toBeLessThanOrEqual(3);
    // ≤ 3 chunks (v1) or the one pack of the changed chunks (v2), and the config.
    const newBlobs = formatVersion === 2 ? 1 : 3;
    expect(store.counts.pushBlob).toBeLessThanOrEqual(newBlobs + 1);
    expect(store.counts.blobExists).toBeLessThanOrEqual(newBlobs + 1);
    // the unchanged chunks are the zstd-codec bytes of the first entry: its blobs (v1), or its
    // frames where they are in its pack (v2)
    const a = await resolveEntry(store, 'z1', { maxEntrySize: Infinity });
    const b = await resolveEntry(store, 'n1', { maxEntrySize: Infinity });
    if (a === undefined || b === undefined) throw new Error('entries not found');
    const frame = (e: typeof a, i: number) => {
      const c = e.config.chunks[i]!;
      const layer = formatVersion === 2 ? e.layers[c.layer!]! : e.layers[i]!;
      return `${c.digest} ${layer.digest} ${c.offset ?? 0} ${c.length ?? layer.size}`;
    };
    const old = new Set(a.config.chunks.map((_, i) => frame(a, i)));
    const kept = b.config.chunks.filter((_, i) => old.has(frame(b, i))).length;
    expect(kept).toBeGreaterThanOrEqual(first.chunksTotal - 3);
    if (formatVersion === 2) {
      // the first entry's pack is a layer of the new one as it is, beside one new pack
      expect(b.layers.map((l) => l.digest)).toEqual(expect.arrayContaining(a.layers.map((l) => l.digest)));
      expect(b.layers.length).toBeLessThanOrEqual(a.layers.length + 1);
    }
    if (hasNodeZstd()) {
      // control: without the base, node:zlib's bytes differ and every chunk is pushed again
      const control = await saveEntry(store, {
        ...common,
        dir,
        tag: 'n2',
        key: 'n2',
        codec: 'node',
        base: false,
      });
      expect(control.chunksPushed).toBeGreaterThan(first.chunksTotal / 2);
    }
    const dst = join(root, `xdst${++seq}`);
    await mkdir(dst, { recursive: true });
    await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag: 'n1', stateDir: false });
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(dir, 'dist'));
  });
});
