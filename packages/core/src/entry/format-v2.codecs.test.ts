/**
 * Format version 2 across runtimes (docs/format.md §11.6): Node 20's `zstd-codec` and Node
 * 22.15+/24's `node:zlib` zstd read each other's packs, and cut the same chunks and the same pack
 * boundaries from the same outputs (the packing rule reads only uncompressed sizes and digests,
 * §11.1), while their compressed frames — and so the packs' digests — differ.
 *
 * The `node` half runs in this process when its node:zlib has zstd; on Node 20 it runs in a
 * child process of the Node 24 that `scripts/with-node24.sh` installs ($TASK_CACHE_NODE24_DIR,
 * default ~/.cache/task-cache-node24), through tsx like the other fixtures' children. Without
 * either, the cross-codec cases are skipped (the tests never download a Node).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLayoutStore } from '@task-cache/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CodecOp, type CodecOpResult, runCodecOps } from '../../test/fixtures/v2-codec-ops.js';
import { removeDir, runChild, seededBytes, tempDir, treeHash } from '../../test/helpers.js';
import { expectPackingRule, readEntry, type StoredEntry, writeMixed } from '../../test/v2.js';
import { hasNodeZstd } from '../internal/zstd.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/fixtures/v2-codec-child.ts', import.meta.url));
const MiB = 1024 * 1024;

/** A Node whose node:zlib has zstd, other than this one: the with-node24.sh install, when present. */
function otherNodeWithZstd(): string | undefined {
  const dir = process.env.TASK_CACHE_NODE24_DIR ?? join(homedir(), '.cache/task-cache-node24');
  const bin = join(dir, 'node_modules/.bin/node');
  if (!existsSync(bin)) return undefined;
  try {
    const ok = execFileSync(bin, ['-p', "typeof require('node:zlib').zstdCompress === 'function'"], {
      encoding: 'utf8',
    });
    return ok.trim() === 'true' ? bin : undefined;
  } catch {
    return undefined;
  }
}

const inProcess = hasNodeZstd();
const otherNode = inProcess ? undefined : otherNodeWithZstd();
const canRunNode = inProcess || otherNode !== undefined;

/** Runs `ops` where the `node` codec exists: here, or in the other Node's child process. */
async function withNodeCodec(layout: string, ops: CodecOp[]): Promise<CodecOpResult[]> {
  if (inProcess) return runCodecOps(layout, ops);
  const { code, err, lastLine } = await runChild(otherNode as string, ['--import', 'tsx', CHILD], {
    cwd: ROOT,
    env: { ...process.env, TC_CODEC_OPS: JSON.stringify({ layout, ops }) },
  });
  expect(code, err).toBe(0);
  const results = JSON.parse(lastLine) as CodecOpResult[];
  // The child really had node:zlib zstd (the codec option refuses `node` otherwise, but say it).
  for (const r of results) expect(r.nodeZstd, r.node).toBe(true);
  return results;
}

let root: string;
let seq = 0;
beforeAll(async () => {
  root = await tempDir('tc-v2-codecs-');
});
afterAll(async () => {
  await removeDir(root);
});

async function dir(label: string): Promise<string> {
  const d = join(root, `${label}-${++seq}`);
  await mkdir(d, { recursive: true });
  return d;
}

/** The chunking and packing of an entry: per chunk its uncompressed digest, size and pack index. */
const cut = (e: StoredEntry) =>
  e.config.chunks.map((c) => ({ digest: c.digest, size: c.size, layer: c.layer }));

describe.each([
  // ~3 MiB: one pack, restored on the calling thread (below `inlineBelow`).
  ['3 MiB (one pack, inline restore)', 3],
  // ~36 MiB: several packs (≥ 16 MiB each but the last), restored through the workers.
  ['36 MiB (several packs, worker restore)', 36],
] as const)('format v2 across codecs: %s', (_label, mib) => {
  it('the codecs cut the same chunks and the same packs; each restores the other’s entry byte-identical', async () => {
    const layout = await dir('layout');
    const src = await dir('src');
    await writeMixed(src, mib, mib);
    const want = await treeHash(src, 'dist');
    const fromWasm = await dir('wasm-by-node');
    const fromNode = await dir('node-by-wasm');
    const fromWasmInline = await dir('wasm-by-node-inline');

    // zstd-codec here (every runtime has it): save, restore, and the packing rule of §11.1.
    const [wasmSaved, wasmRestored] = await runCodecOps(layout, [
      { op: 'save', dir: src, tag: 'wasm', codec: 'zstd-codec' },
      { op: 'restore', dir: await dir('wasm-by-wasm'), tag: 'wasm', codec: 'zstd-codec' },
    ]);
    expect(wasmSaved?.result.formatVersion).toBe(2);
    expect(wasmRestored?.result.chunksFetched).toBe(wasmSaved?.result.chunksTotal);
    const wasm = await readEntry(createLayoutStore(layout), 'wasm');
    expectPackingRule(wasm);
    if (mib > 32) expect(wasm.manifest.layers.length).toBeGreaterThanOrEqual(2);
    else expect(wasm.manifest.layers).toHaveLength(1);
    // NOTE: without a Node whose node:zlib has zstd, the cross-codec half cannot run here.
    if (!canRunNode) return;

    // node:zlib: save the same outputs, restore the zstd-codec entry (on the worker path, and on
    // the calling thread where the entry is large).
    const nodeOps: CodecOp[] = [
      { op: 'save', dir: src, tag: 'node', codec: 'node' },
      { op: 'restore', dir: fromWasm, tag: 'wasm', codec: 'node', inlineBelow: 0 },
      { op: 'restore', dir: fromWasmInline, tag: 'wasm', codec: 'node', inlineBelow: 64 * MiB },
    ];
    const [nodeSaved, restoredByNode, restoredByNodeInline] = await withNodeCodec(layout, nodeOps);
    expect(nodeSaved?.result.formatVersion).toBe(2);
    expect(restoredByNode?.result.chunksFetched).toBe(wasmSaved?.result.chunksTotal);
    expect(restoredByNodeInline?.result.chunksFetched).toBe(wasmSaved?.result.chunksTotal);
    expect(await treeHash(fromWasm, 'dist')).toBe(want);
    expect(await treeHash(fromWasmInline, 'dist')).toBe(want);

    // zstd-codec restores the node:zlib entry.
    const [restoredByWasm] = await runCodecOps(layout, [
      { op: 'restore', dir: fromNode, tag: 'node', codec: 'zstd-codec' },
    ]);
    expect(restoredByWasm?.result.chunksFetched).toBe(nodeSaved?.result.chunksTotal);
    expect(await treeHash(fromNode, 'dist')).toBe(want);

    // Same chunks, same pack of every chunk, same number of packs; different compressed bytes.
    const store = createLayoutStore(layout);
    const node = await readEntry(store, 'node');
    expect(cut(node)).toEqual(cut(wasm));
    expect(node.manifest.layers.length).toBe(wasm.manifest.layers.length);
    expectPackingRule(node);
    const wasmPacks = new Set(wasm.manifest.layers.map((l) => l.digest));
    // Proof that two compressors ran: no pack of one is a pack of the other.
    for (const l of node.manifest.layers) expect(wasmPacks.has(l.digest)).toBe(false);
    await store.close?.();
  }, 120_000);
});

describe.skipIf(!canRunNode)('format v2 warm saves across codecs', () => {
  it('a node:zlib warm save on a zstd-codec base references its packs; zstd-codec restores the mixed entry, and the reverse', async () => {
    const layout = await dir('warm-layout');
    const src = await dir('warm-src');
    const middle = await writeMixed(src, 36, 3);
    const cold = async (tag: string, codec: 'node' | 'zstd-codec') =>
      codec === 'zstd-codec'
        ? runCodecOps(layout, [{ op: 'save', dir: src, tag, codec }])
        : withNodeCodec(layout, [{ op: 'save', dir: src, tag, codec }]);
    await cold('wasm-cold', 'zstd-codec');
    await cold('node-cold', 'node');
    await writeFile(join(src, middle), seededBytes(10 * 1024, 7002));
    const want = await treeHash(src, 'dist');

    // node:zlib compresses only the changed chunks on the zstd-codec base, and the reverse.
    const [nodeWarm] = await withNodeCodec(layout, [
      { op: 'save', dir: src, tag: 'node-warm', codec: 'node', base: 'wasm-cold' },
    ]);
    const [wasmWarm] = await runCodecOps(layout, [
      { op: 'save', dir: src, tag: 'wasm-warm', codec: 'zstd-codec', base: 'node-cold' },
    ]);
    for (const w of [nodeWarm, wasmWarm]) {
      expect(w?.result.chunksPushed).toBeGreaterThanOrEqual(1);
      expect(w?.result.chunksPushed).toBeLessThanOrEqual(3);
    }
    const store = createLayoutStore(layout);
    const entries = Object.fromEntries(
      await Promise.all(
        ['wasm-cold', 'node-cold', 'node-warm', 'wasm-warm'].map(
          async (t) => [t, await readEntry(store, t)] as const,
        ),
      ),
    );
    await store.close?.();
    const packs = (t: string) => (entries[t] as StoredEntry).manifest.layers.map((l) => l.digest);
    // The warm entries hold their base's packs and one or two packs of the other codec.
    for (const [warm, base] of [
      ['node-warm', 'wasm-cold'],
      ['wasm-warm', 'node-cold'],
    ] as const) {
      for (const d of packs(base)) expect(packs(warm)).toContain(d);
      const fresh = packs(warm).filter((d) => !packs(base).includes(d));
      expect(fresh.length).toBeGreaterThanOrEqual(1);
      expect(fresh.length).toBeLessThanOrEqual(2);
    }
    // Both warm entries list the same chunks.
    expect((entries['node-warm'] as StoredEntry).config.chunks.map((c) => c.digest)).toEqual(
      (entries['wasm-warm'] as StoredEntry).config.chunks.map((c) => c.digest),
    );

    // Each mixed entry restores with either codec.
    const dsts = {
      a: await dir('mixed-a'),
      b: await dir('mixed-b'),
      c: await dir('mixed-c'),
      d: await dir('mixed-d'),
    };
    await runCodecOps(layout, [
      { op: 'restore', dir: dsts.a, tag: 'node-warm', codec: 'zstd-codec' },
      { op: 'restore', dir: dsts.b, tag: 'wasm-warm', codec: 'zstd-codec' },
    ]);
    await withNodeCodec(layout, [
      { op: 'restore', dir: dsts.c, tag: 'node-warm', codec: 'node' },
      { op: 'restore', dir: dsts.d, tag: 'wasm-warm', codec: 'node' },
    ]);
    for (const d of Object.values(dsts)) expect(await treeHash(d, 'dist')).toBe(want);
  }, 120_000);
});

it.runIf(!canRunNode)('NOTE: no Node with node:zlib zstd here; the cross-codec halves are skipped', () => {
  expect(hasNodeZstd()).toBe(false);
});
