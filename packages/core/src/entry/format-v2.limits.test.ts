/**
 * Format version 2 and the restore cap `maxEntrySize` (docs/format.md §8, §11.3, §11.4): a warm
 * entry references frames inside its base's packs, which also hold frames it no longer uses (kept
 * while at least half of a pack is live). The cap is on the entry — its uncompressed size, and the
 * compressed bytes a restore fetches (its frames) — not on the packs it points into.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash } from '../../test/helpers.js';
import { readEntry } from '../../test/v2.js';
import { EntryCorruptError, EntryTooLargeError } from '../errors.js';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
import {
  ENTRY_ARTIFACT_TYPE_V2,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  OCI_MANIFEST_MEDIA_TYPE,
  PACK_MEDIA_TYPE,
} from './format.js';
import { lookupEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

const MiB = 1024 * 1024;
const ALL = ['dist/**'];

let root: string;
beforeAll(async () => {
  root = await tempDir('tc-v2-limits-');
});
afterAll(async () => {
  await removeDir(root);
});

describe('format v2: maxEntrySize on a warm entry whose packs hold frames it does not use', () => {
  it('an entry below the cap restores although its packs (live and dead frames) add up to more than the cap', async () => {
    const store = createMemoryStore();
    const src = join(root, 'src');
    await mkdir(join(src, 'dist'), { recursive: true });
    // 20 MiB of incompressible files: the packs hold about what the entry holds.
    for (let i = 0; i < 10; i++) await writeFile(join(src, `dist/f${i}.bin`), seededBytes(2 * MiB, 3100 + i));
    const opts = {
      dir: src,
      generates: ALL,
      task: 'cap',
      formatVersion: 2 as const,
      // 64 KiB chunks: a changed file changes its own chunks, not its neighbours' (1 MiB chunks
      // straddle most 2 MiB files).
      avgChunkSize: 64 * 1024,
      stateDir: join(root, 'state'),
    };
    await saveEntry(store, { ...opts, tag: 'cold', key: 'cold' });
    // Three files of ten change, spread out: each cold pack keeps more than half of its bytes
    // live, so it is referenced as it is (not repacked) and its dead frames stay in it.
    for (const i of [1, 4, 6]) await writeFile(join(src, `dist/f${i}.bin`), seededBytes(2 * MiB, 3200 + i));
    const warm = await saveEntry(store, { ...opts, tag: 'warm', key: 'warm' });
    const coldEntry = await readEntry(store, 'cold');
    const warmEntry = await readEntry(store, 'warm');
    for (const l of coldEntry.manifest.layers)
      expect(warmEntry.manifest.layers.map((w) => w.digest)).toContain(l.digest);
    const packBytes = warmEntry.manifest.layers.reduce((n, l) => n + l.size, 0);
    const frameBytes = warmEntry.config.chunks.reduce((n, c) => n + c.length, 0);
    // The premise: the packs hold ~6 MiB of frames the entry does not use.
    expect(packBytes - frameBytes).toBeGreaterThan(5 * MiB);

    // A cap above the entry (its data and its frames), below what its packs add up to.
    const cap = Math.max(warm.bytesTotal, frameBytes) + MiB;
    expect(packBytes).toBeGreaterThan(cap + Math.ceil(cap / 128) + warmEntry.manifest.layers.length * 1024);
    const found = await lookupEntry(store, { tag: 'warm', maxEntrySize: cap }).catch((e: unknown) => e);
    expect(found).not.toBeInstanceOf(EntryTooLargeError);
    const dst = join(root, 'dst');
    await mkdir(dst, { recursive: true });
    const restored = await restoreEntry(store, {
      dir: dst,
      generates: ALL,
      tag: 'warm',
      maxEntrySize: cap,
      stateDir: false,
    }).catch((e: unknown) => e);
    expect(restored).not.toBeInstanceOf(Error);
    expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));

    // The cap still refuses an entry above it, before any pack is fetched.
    const under = await restoreEntry(store, {
      dir: dst,
      generates: ALL,
      tag: 'warm',
      maxEntrySize: warm.bytesTotal - 1,
      stateDir: false,
    }).catch((e: unknown) => e);
    expect(under).toBeInstanceOf(EntryTooLargeError);
  }, 60_000);

  it('a version 2 entry whose packs add up to more than twice the cap is refused before anything is fetched', async () => {
    const inner = createMemoryStore();
    const cap = 10 * MiB;
    const blob = async (mediaType: string, bytes: Buffer) => {
      const d = {
        mediaType,
        digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
        size: bytes.byteLength,
      };
      await inner.pushBlob(d, bytes);
      return d;
    };
    // Packs of 22 MiB, a config that is not one (only the caps can refuse before it is read).
    const layers = [
      await blob(PACK_MEDIA_TYPE, Buffer.alloc(16 * MiB, 1)),
      await blob(PACK_MEDIA_TYPE, Buffer.alloc(6 * MiB, 2)),
    ];
    const config = await blob(ENTRY_CONFIG_MEDIA_TYPE_V2, Buffer.from('{}'));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST_MEDIA_TYPE,
        artifactType: ENTRY_ARTIFACT_TYPE_V2,
        config,
        layers,
      }),
    );
    await inner.pushManifest(manifest, OCI_MANIFEST_MEDIA_TYPE, { tag: 'huge' });
    const store = countingStore(inner);
    const err = await lookupEntry(store, { tag: 'huge', maxEntrySize: cap }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EntryTooLargeError);
    expect(store.counts.fetchBlob).toBe(0);
    // Within twice the cap the packs pass this check; the config decides (here: not a config).
    const within = await lookupEntry(store, { tag: 'huge', maxEntrySize: 11 * MiB }).catch((e: unknown) => e);
    expect(within).toBeInstanceOf(EntryCorruptError);
    expect(store.counts.fetchBlob).toBe(1);
  });
});
