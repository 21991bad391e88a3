import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { descriptorOf } from '../digest.js';
import { InvalidOptionError, ManifestBlobUnknownError } from '../errors.js';
import type { Descriptor } from '../types.js';
import { ACCESS_DIR, IN_USE_DIR } from './prune.js';
import { createLayoutStore, type LayoutStore } from './store.js';

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG_TYPE = 'application/vnd.task-cache.entry.config.v1+json';
const LAYER_TYPE = 'application/vnd.task-cache.chunk.v1+zstd';
const KiB = 1024;

let dir: string;
let store: LayoutStore;

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'tc-prune-')), 'layout');
  store = createLayoutStore(dir, { fsync: false });
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

const bytesOf = (seed: string, size: number) => new TextEncoder().encode(seed.padEnd(size, '.'));
const blobFile = (digest: string) => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));

/** An entry of a config, the shared chunk and one chunk of its own, tagged `tag`. */
async function pushEntry(
  tag: string,
  shared: Uint8Array,
): Promise<{ manifest: Descriptor; own: Descriptor; bytes: Uint8Array }> {
  const config = descriptorOf(bytesOf(`config ${tag}`, 64), CONFIG_TYPE);
  const own = descriptorOf(bytesOf(`own ${tag}`, 4 * KiB), LAYER_TYPE);
  const sharedDesc = descriptorOf(shared, LAYER_TYPE);
  await store.pushBlob(config, bytesOf(`config ${tag}`, 64));
  await store.pushBlob(own, bytesOf(`own ${tag}`, 4 * KiB));
  await store.pushBlob(sharedDesc, shared);
  const manifest = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config, layers: [sharedDesc, own] }),
  );
  return { manifest: await store.pushManifest(manifest, MANIFEST_TYPE, { tag }), own, bytes: manifest };
}

/** Sets the last use of `tag` to `secondsAgo`. */
async function usedAgo(tag: string, secondsAgo: number): Promise<void> {
  const t = new Date(Date.now() - secondsAgo * 1000);
  await utimes(join(dir, ACCESS_DIR, tag), t, t);
}

async function tags(): Promise<string[]> {
  const out: string[] = [];
  for await (const t of store.listTags()) out.push(t);
  return out;
}

describe('LayoutStore.prune', () => {
  it('under a size cap keeps the most recently used entries and their shared chunks, removes the rest', async () => {
    const shared = bytesOf('shared', 4 * KiB);
    const entries = [];
    for (const [i, tag] of ['a', 'b', 'c', 'd'].entries()) {
      entries.push(await pushEntry(tag, shared));
      await usedAgo(tag, 100 - i * 10); // a oldest … d newest
    }
    // A restore of `a` makes it the most recently used.
    await store.recordUse('a');
    // An unreferenced blob (a save in progress) is young: kept.
    const pending = descriptorOf(bytesOf('pending', 100), LAYER_TYPE);
    await store.pushBlob(pending, bytesOf('pending', 100));

    // Each entry: 64 + 4 KiB of its own (+ a manifest); the shared chunk counts once.
    const dry = await store.prune({ maxSize: 14 * KiB, dryRun: true });
    expect(dry.removedTags).toEqual(['b', 'c']);
    expect(await tags()).toEqual(['a', 'b', 'c', 'd']);

    const result = await store.prune({ maxSize: 14 * KiB });
    expect(result.removedTags).toEqual(['b', 'c']);
    expect(result.keptTags).toBe(2);
    expect(result.keptBytes).toBeLessThanOrEqual(14 * KiB);
    expect(await tags()).toEqual(['a', 'd']);
    expect(existsSync(blobFile(descriptorOf(shared, LAYER_TYPE).digest))).toBe(true);
    expect(existsSync(blobFile(pending.digest))).toBe(true);
    for (const victim of [entries[1]!, entries[2]!]) {
      expect(existsSync(blobFile(victim.own.digest))).toBe(false);
      expect(existsSync(blobFile(victim.manifest.digest))).toBe(false);
      expect(result.removedBlobs).toContain(victim.own.digest);
    }
    expect(result.removedBlobs).not.toContain(descriptorOf(shared, LAYER_TYPE).digest);
    // Every survivor is whole.
    for (const tag of ['a', 'd']) {
      const m = await store.fetchManifest(tag);
      const doc = JSON.parse(new TextDecoder().decode(m!.bytes)) as { layers: Descriptor[] };
      for (const layer of doc.layers) expect(await store.blobExists(layer)).toBe(true);
    }
    expect((await readdir(join(dir, ACCESS_DIR))).sort()).toEqual(['a', 'd']);
  });

  it('keeps the most recently used entry even when it alone exceeds the cap', async () => {
    await pushEntry('a', bytesOf('s', 4 * KiB));
    await usedAgo('a', 50);
    await pushEntry('b', bytesOf('s', 4 * KiB));
    const result = await store.prune({ maxSize: 1 });
    expect(result.removedTags).toEqual(['a']);
    expect(await tags()).toEqual(['b']);
  });

  it('removes entries unused for longer than maxAgeMs, and leaves a layout without limits alone', async () => {
    await pushEntry('old', bytesOf('s', KiB));
    await pushEntry('new', bytesOf('s', KiB));
    await usedAgo('old', 3600);
    expect((await store.prune()).removedTags).toEqual([]);
    const result = await store.prune({ maxAgeMs: 60_000 });
    expect(result.removedTags).toEqual(['old']);
    expect(await tags()).toEqual(['new']);
  });

  it('keeps an entry marked in use by a live process, not one of a dead process', async () => {
    await pushEntry('a', bytesOf('s', KiB));
    await pushEntry('b', bytesOf('s', KiB));
    const use = await store.markInUse('a');
    await usedAgo('a', 3600);
    expect((await store.prune({ maxAgeMs: 60_000 })).removedTags).toEqual([]);
    await use.release();
    await use.release();
    // A marker left by a process that died (a PID that cannot be running) protects nothing.
    await mkdir(join(dir, IN_USE_DIR), { recursive: true });
    await writeFile(
      join(dir, IN_USE_DIR, 'a@999999999.dead'),
      JSON.stringify({ pid: 999_999_999, host: (await import('node:os')).hostname() }),
    );
    const result = await store.prune({ maxAgeMs: 60_000 });
    expect(result.removedTags).toEqual(['a']);
    expect(await readdir(join(dir, IN_USE_DIR))).toEqual([]);
  });

  it('a tag whose blobs a prune deleted fails with MANIFEST_BLOB_UNKNOWN instead of committing a broken entry', async () => {
    // Regression guard: a save checks its chunks exist, a prune deletes one, the save's tag lands.
    const shared = bytesOf('shared', KiB);
    const { manifest, bytes } = await pushEntry('a', shared);
    await usedAgo('a', 3600);
    await pushEntry('b', shared);
    await store.prune({ maxAgeMs: 60_000 });
    // The save's manifest blob is there (its reference check passed before the prune).
    await store.pushBlob(manifest, bytes);
    const err = await store.tag(manifest, 'again').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManifestBlobUnknownError);
    expect((err as ManifestBlobUnknownError).missingDigests?.length).toBeGreaterThan(0);
    expect(await tags()).toEqual(['b']);
  });

  it('validates its options', async () => {
    await expect(store.prune({ maxSize: -1 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(store.prune({ maxAgeMs: Number.NaN })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(store.markInUse('not a tag')).rejects.toThrow();
  });
});
