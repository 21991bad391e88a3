/**
 * The bounded local store under concurrency: 8 processes save, restore and prune one layout at
 * once (a background prune after every save, `cache.prune()` every other run). Afterwards skopeo
 * reads every tag of the layout, and every surviving entry restores.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLayoutStore } from '@task-cache/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreEntry } from '../entry/restore.js';
import { createCache } from '../run/cache.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/fixtures/prune-child.ts', import.meta.url));
const run = promisify(execFile);
const KiB = 1024;
const MAX_SIZE = 400 * KiB;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tc-prune-8-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function child(
  id: number,
  layout: string,
  stateDir: string,
): Promise<{ statuses: string[]; warnings: string[] }> {
  const args = { layout, stateDir, work: join(work, 'projects'), id, iterations: 4, maxSize: MAX_SIZE };
  const p = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    cwd: ROOT,
    env: { ...process.env, TC_CHILD: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => {
    out += d;
  });
  p.stderr.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) =>
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`child ${id} exited with ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!));
    }),
  );
}

describe('prune with 8 processes saving and restoring', () => {
  it('leaves a layout skopeo reads, within the cap after a final prune, and every surviving entry restores', async () => {
    const layout = join(work, 'layout');
    const stateDir = join(work, 'state');
    const results = await Promise.all(Array.from({ length: 8 }, (_, id) => child(id, layout, stateDir)));
    const statuses = results.flatMap((r) => r.statuses);
    expect(statuses).toHaveLength(32);
    expect(statuses.every((s) => s === 'saved' || s === 'restored')).toBe(true);
    // No run lost an entry it was restoring or saving to a concurrent prune.
    expect(results.flatMap((r) => r.warnings)).toEqual([]);

    const cache = createCache({ store: `oci-layout:${layout}`, stateDir, maxSize: MAX_SIZE, env: {} });
    await cache.prune();
    await cache.close();
    let blobBytes = 0;
    for (const name of await readdir(join(layout, 'blobs', 'sha256')))
      blobBytes += (await stat(join(layout, 'blobs', 'sha256', name))).size;
    // Within the cap plus one entry (~112 KiB of chunks, its config and manifest).
    expect(blobBytes).toBeLessThanOrEqual(MAX_SIZE + 140 * KiB);
    expect(await readdir(join(layout, 'in-use'))).toEqual([]);

    const store = createLayoutStore(layout);
    const tags: string[] = [];
    for await (const t of store.listTags()) tags.push(t);
    expect(tags.length).toBeGreaterThan(0);
    for (const tag of tags) {
      const manifest = await store.fetchManifest(tag);
      const { stdout } = await run('skopeo', ['inspect', '--raw', `oci:${layout}:${tag}`], {
        encoding: 'buffer',
        timeout: 60_000,
      });
      expect(Buffer.from(stdout).equals(Buffer.from(manifest!.bytes))).toBe(true);
      // A copy reads (and checks) every blob of the entry.
      await run('skopeo', ['copy', '-q', `oci:${layout}:${tag}`, `oci:${join(work, 'copy')}:${tag}`], {
        timeout: 60_000,
      });
      if (tag.endsWith('.latest')) continue;
      const dir = await mkdtemp(join(work, 'restore-'));
      const restored = await restoreEntry(store, { dir, generates: ['dist/**'], tag, stateDir: false });
      expect(restored?.files).toBe(2);
      expect((await readFile(join(dir, 'dist', 'shared.bin'))).byteLength).toBe(64 * KiB);
    }
  }, 600_000);
});
