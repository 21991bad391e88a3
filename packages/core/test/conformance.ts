/**
 * The entry conformance suite: the same save/restore behaviour tests against every store
 * (memory, OCI image layout, the real registry, the Redis store). Call {@link entryConformance}
 * from a test file. (What a store itself must do, whatever it stores, is the store contract of
 * `@task-cache/testkit`; this suite is about entries.) Over 400 lines on purpose: one list of
 * cases, the behaviour every store must show for entries.
 */
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OciStore } from '@task-cache/oci';
import { hostileTar, type TarRecord, tarDir, tarEnd, tarFile, tarSymlink } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRY_FORMAT_VERSION, type EntryForm, OCI_INDEX_MEDIA_TYPE } from '../src/entry/format.js';
import {
  countingStore,
  EntryError,
  hasEntry,
  restoreEntry as restoreEntryIn,
  saveEntry as saveEntryIn,
  TaskCacheError,
} from '../src/index.js';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from './helpers.js';
import {
  device,
  dir,
  fifo,
  file,
  type HostileEntry,
  hardlink,
  link,
  pushArchive,
  pushHostile,
  type Tamper,
} from './hostile.js';

/** A store for one test, plus optional hooks the backend can offer. */
export interface StoreFixture {
  store: OciStore;
  /** Replace a stored blob's bytes (to test verification); absent when the backend cannot. */
  tamperBlob?(digest: string, bytes: Uint8Array): Promise<void>;
  /** Remove a stored blob; absent when the backend cannot. */
  removeBlob?(digest: string): Promise<void>;
}

export interface ConformanceOptions {
  /** Run the big acceptance cases (300 MB file, 200 MB dedup). @default false */
  big?: boolean;
  /**
   * Run the 1 GB case: a mixed 1 GiB output saved cold (more chunks than the layer cap of 500,
   * so the index form), saved warm after a one-file change (at most 3 chunks, < 2 % of the
   * bytes), and restored byte-identical.
   * @default false
   */
  gigabyte?: boolean;
  /** The fixture offers `tamperBlob` and `removeBlob`: run the tampering cases. @default false */
  tamper?: boolean;
  /**
   * Smaller inputs for the cases that move many chunks (2 000 files instead of 20 000, 1.5 MB
   * dedup and 1 MB sharing with 16 KiB chunks instead of 20 MB and 4 MB with 64 KiB): for a
   * store reached through a proxy once per profile, where each chunk costs several requests.
   * The behaviour checked is the same.
   * @default false
   */
  small?: boolean;
  /**
   * The form hand-built (hostile) entries are pushed in: `compat` for stores that refuse the
   * standard form's media types (the gitlab and quay quirk profiles).
   * @default 'standard'
   */
  form?: EntryForm;
  /** The entry format version the saves write (`formatVersion`). @default the library's default */
  formatVersion?: 1 | 2;
}

const ALL = ['dist/**'];
let seq = 0;
const nextTag = (p: string) => `${p}-${process.pid}-${++seq}`;

export function entryConformance(
  name: string,
  makeStore: () => Promise<StoreFixture>,
  options: ConformanceOptions = {},
): void {
  describe(`entry conformance: ${name}`, () => {
    let root: string;
    beforeAll(async () => {
      root = await tempDir(`tc-conf-${name}-`);
    });
    afterAll(async () => {
      await removeDir(root);
    });
    // The remembered bases stay in the suite's temp dir: no test writes under HOME (CI checks).
    const version = options.formatVersion ?? ENTRY_FORMAT_VERSION;
    const v2 = version === 2;
    const saveEntry: typeof saveEntryIn = (store, o) =>
      saveEntryIn(store, { stateDir: join(root, 'state'), formatVersion: version, ...o });
    const restoreEntry: typeof restoreEntryIn = (store, o) =>
      restoreEntryIn(store, { stateDir: join(root, 'state'), ...o });
    const taskDir = async (label: string) => {
      const d = join(root, `${label}-${++seq}`);
      await mkdir(d, { recursive: true });
      return d;
    };

    it('round-trips files, empty files, empty dirs, exec bits, relative symlinks, unicode and long paths', async () => {
      const { store } = await makeStore();
      const src = await taskDir('src');
      const long = `dist/${'deep-directory-name/'.repeat(12)}${'f'.repeat(200)}.txt`;
      await writeTree(src, {
        'dist/app.js': 'console.log(1)\n',
        'dist/empty.txt': '',
        'dist/bin/run.sh': '#!/bin/sh\necho hi\n',
        'dist/ünïcødé/日本語ファイル.txt': 'こんにちは',
        [long]: 'long path',
        'dist/.hidden': 'dot',
        'src/not-an-output.ts': 'x',
      });
      await chmod(join(src, 'dist/bin/run.sh'), 0o755);
      await mkdir(join(src, 'dist/empty-dir/nested-empty'), { recursive: true });
      await symlink('../app.js', join(src, 'dist/bin/app-link.js'));
      await symlink('ünïcødé', join(src, 'dist/dir-link'));
      const tag = nextTag('basic');
      const saved = await saveEntry(store, { dir: src, generates: ALL, tag, task: 'build', key: tag });
      expect(saved.files).toBe(8);
      // NOTE: a registry refusing the standard form makes a version 2 save push its chunks again
      // as version 1 chunk layers; a one-frame pack is that very blob, so it is not pushed twice.
      if (!(v2 && options.form === 'compat')) expect(saved.chunksPushed).toBe(saved.chunksTotal);
      expect(await hasEntry(store, tag)).toBe(true);

      const dst = await taskDir('dst');
      await writeTree(dst, { 'dist/stale.js': 'old', 'src/keep.ts': 'mine' });
      const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag });
      expect(restored?.digest).toBe(saved.digest);
      expect(restored?.files).toBe(8);
      expect(restored?.removed).toBe(1); // dist/stale.js
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      expect(await readFile(join(dst, 'src/keep.ts'), 'utf8')).toBe('mine');
      expect((await stat(join(dst, 'dist/bin/run.sh'))).mode & 0o777).toBe(0o755);
      await expect(stat(join(dst, 'src/not-an-output.ts'))).rejects.toThrow();
    });

    it('gives identical bytes for identical outputs (normalized archive) and a miss for an unknown tag', async () => {
      const { store } = await makeStore();
      const a = await taskDir('a');
      const b = await taskDir('b');
      await writeTree(b, { 'dist/z.txt': 'z', 'dist/a/b.txt': 'b' }); // created in another order
      await writeTree(a, { 'dist/a/b.txt': 'b', 'dist/z.txt': 'z' });
      await chmod(join(a, 'dist/z.txt'), 0o644);
      await chmod(join(b, 'dist/z.txt'), 0o644);
      const counted = countingStore(store);
      const t1 = nextTag('same');
      await saveEntry(counted, { dir: a, generates: ALL, tag: t1, task: 't', key: t1 });
      counted.resetCounts();
      const second = await saveEntry(counted, { dir: b, generates: ALL, tag: t1, task: 't', key: t1 });
      expect(second.chunksPushed).toBe(0);
      // only the config (its creation time differs) and the manifest
      expect(counted.counts.pushBlob).toBeLessThanOrEqual(1);
      // chunks this process just pushed are known to exist: not even checked again
      expect(counted.counts.blobExists).toBeLessThanOrEqual(1);
      expect(counted.counts.pushManifest).toBe(1);
      expect(await restoreEntry(store, { dir: b, generates: ALL, tag: nextTag('unknown') })).toBeUndefined();
      expect(await hasEntry(store, nextTag('unknown'))).toBe(false);
    });

    const dirsOfMany = options.small ? 10 : 100;
    it(`round-trips ${(dirsOfMany * 200).toLocaleString('en-US').replace(',', ' ')} small files`, async () => {
      const { store } = await makeStore();
      const src = await taskDir('many');
      for (let d = 0; d < dirsOfMany; d++) {
        await mkdir(join(src, `dist/d${d}`), { recursive: true });
        await Promise.all(
          Array.from({ length: 200 }, (_, f) =>
            writeFile(join(src, `dist/d${d}/f${f}.txt`), `file ${d}/${f}\n`.repeat(f % 7)),
          ),
        );
      }
      const tag = nextTag('many');
      const saved = await saveEntry(store, { dir: src, generates: ALL, tag, task: 'many', key: tag });
      expect(saved.files).toBe(dirsOfMany * 200);
      const dst = await taskDir('many-dst');
      const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag });
      expect(restored?.files).toBe(dirsOfMany * 200);
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    });

    const dedupCase = async (files: number, fileSize: number, avgChunkSize: number) => {
      const { store } = await makeStore();
      const src = await taskDir('dedup');
      await mkdir(join(src, 'dist'));
      for (let i = 0; i < files; i++)
        await writeFile(join(src, `dist/part-${String(i).padStart(4, '0')}.bin`), seededBytes(fileSize, i));
      await writeFile(join(src, 'dist/part-middle.txt'), seededBytes(10 * 1024, 9999));
      const t1 = nextTag('dedup');
      const first = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag: t1,
        task: 'd',
        key: t1,
        avgChunkSize,
      });
      expect(first.chunksPushed).toBe(first.chunksTotal);
      await writeFile(join(src, 'dist/part-middle.txt'), seededBytes(10 * 1024, 4242));
      const t2 = nextTag('dedup');
      const second = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag: t2,
        task: 'd',
        key: t2,
        avgChunkSize,
      });
      expect(second.chunksTotal).toBeGreaterThan(10);
      expect(second.chunksPushed).toBeGreaterThanOrEqual(1);
      expect(second.chunksPushed).toBeLessThanOrEqual(3);
      const dst = await taskDir('dedup-dst');
      await restoreEntry(store, { dir: dst, generates: ALL, tag: t2 });
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      return { store, src };
    };

    if (options.small) {
      it('changing one 10 KB file in the middle pushes at most 3 chunks (1.5 MB, 16 KiB chunks)', async () => {
        await dedupCase(12, 128 * 1024, 16 * 1024);
      });
    } else {
      it('changing one 10 KB file in the middle pushes at most 3 chunks (20 MB, 64 KiB chunks)', async () => {
        await dedupCase(40, 512 * 1024, 64 * 1024);
      });
    }

    if (options.big) {
      it('changing one 10 KB file in the middle of 200 MB pushes at most 3 chunks (default 1 MiB chunks)', async () => {
        await dedupCase(200, 1024 * 1024, 1024 * 1024);
      });

      it('round-trips a 300 MB file', async () => {
        const { store } = await makeStore();
        const src = await taskDir('big');
        await mkdir(join(src, 'dist'));
        await writeFile(join(src, 'dist/big.bin'), seededBytes(300 * 1024 * 1024, 300));
        const tag = nextTag('big');
        const saved = await saveEntry(store, { dir: src, generates: ALL, tag, task: 'big', key: tag });
        expect(saved.bytesTotal).toBeGreaterThan(300 * 1024 * 1024);
        const dst = await taskDir('big-dst');
        const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag });
        expect(restored?.chunksFetched).toBe(saved.chunksTotal);
        expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      });
    }

    if (options.gigabyte) {
      it(`a 1 GiB entry: cold save ${v2 ? 'in at most 64 packs' : 'in the index form'}, warm save after a one-file change pushes < 2 % of the bytes, restore is byte-identical`, async () => {
        const { store } = await makeStore();
        const src = await taskDir('gib');
        await mkdir(join(src, 'dist/bin'), { recursive: true });
        await mkdir(join(src, 'dist/text'), { recursive: true });
        // Mixed like a build output: 512 MiB of incompressible files, 512 MiB of text that
        // compresses (seeded, so every run and every runtime builds the same bytes).
        const MiB = 1024 * 1024;
        for (let i = 0; i < 128; i++) {
          await writeFile(
            join(src, `dist/bin/b${String(i).padStart(3, '0')}.bin`),
            seededBytes(4 * MiB, 5000 + i),
          );
          const hex = seededBytes(2 * MiB, 6000 + i).toString('hex');
          await writeFile(
            join(src, `dist/text/t${String(i).padStart(3, '0')}.txt`),
            hex.replace(/(.{64})/g, '$1\n'),
          );
        }
        await writeFile(join(src, 'dist/text/middle.txt'), seededBytes(10 * 1024, 7000));
        const want = await treeHash(src, 'dist');
        const t1 = nextTag('gib');
        const cold = await saveEntry(store, { dir: src, generates: ALL, tag: t1, task: 'gib', key: t1 });
        expect(cold.bytesTotal).toBeGreaterThan(1024 * MiB);
        expect(cold.chunksPushed).toBe(cold.chunksTotal);
        expect(cold.chunksTotal).toBeGreaterThan(500);
        const top = await store.fetchManifest(t1);
        if (v2 && options.form !== 'compat') {
          // One manifest of packs: at most one per 16 MiB of data.
          expect(top?.descriptor.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
          expect(cold.blobsTotal).toBeLessThanOrEqual(Math.ceil(cold.bytesTotal / (16 * MiB)));
          expect(cold.blobsTotal).toBeLessThanOrEqual(64 + 1);
        } else {
          expect(top?.descriptor.mediaType).toBe('application/vnd.oci.image.index.v1+json');
        }
        await writeFile(join(src, 'dist/text/middle.txt'), seededBytes(10 * 1024, 7001));
        const t2 = nextTag('gib');
        const warm = await saveEntry(store, { dir: src, generates: ALL, tag: t2, task: 'gib', key: t2 });
        expect(warm.chunksTotal).toBeGreaterThan(500);
        expect(warm.chunksPushed).toBeGreaterThanOrEqual(1);
        expect(warm.chunksPushed).toBeLessThanOrEqual(3);
        expect(warm.bytesPushed / cold.bytesPushed).toBeLessThan(0.02);
        const dst = await taskDir('gib-dst');
        if (v2) {
          // The warm entry: frames of the cold packs read with ranges around the changed chunks.
          const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag: t2 });
          expect(restored?.chunksFetched).toBe(warm.chunksTotal);
          expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
        } else {
          const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag: t1 });
          expect(restored?.chunksFetched).toBe(cold.chunksTotal);
          expect(await treeHash(dst, 'dist')).toBe(want);
        }
        await removeDir(dst);
        await removeDir(src);
      }, 900_000);
    }

    it('two tasks sharing most bytes share chunks', async () => {
      const { store } = await makeStore();
      const a = await taskDir('share-a');
      const b = await taskDir('share-b');
      const shared = seededBytes((options.small ? 1 : 4) * 1024 * 1024, 77);
      const avgChunkSize = (options.small ? 16 : 64) * 1024;
      await writeTree(a, { 'dist/shared.bin': shared, 'dist/only-a.txt': 'a' });
      await writeTree(b, { 'dist/shared.bin': shared, 'dist/only-b.txt': 'bbbb' });
      const ta = nextTag('share');
      const tb = nextTag('share');
      await saveEntry(store, {
        dir: a,
        generates: ALL,
        tag: ta,
        task: 'a',
        key: ta,
        avgChunkSize,
      });
      // NOTE: format version 2 shares whole packs through existence checks, and frames of another
      // task's entry only when it is named as the base (docs/format.md §11.4).
      const sb = await saveEntry(store, {
        dir: b,
        generates: ALL,
        tag: tb,
        task: 'b',
        key: tb,
        avgChunkSize,
        ...(v2 ? { base: ta } : {}),
      });
      expect(sb.chunksTotal).toBeGreaterThan(30);
      expect(sb.chunksPushed).toBeLessThanOrEqual(3);
    });

    it.runIf(v2)(
      'version 2: an entry whose packs exceed the layer cap is an index, and restores',
      async () => {
        const { store } = await makeStore();
        const src = await taskDir('index2');
        await writeTree(src, { 'dist/data.bin': seededBytes(300 * 1024, 5), 'dist/x.txt': 'x' });
        // A cold save is one pack here; each warm save adds a pack of its changed chunks and keeps
        // referencing the packs before it.
        const tags = [nextTag('index2'), nextTag('index2'), nextTag('index2')];
        let saved: Awaited<ReturnType<typeof saveEntry>> | undefined;
        for (const [i, tag] of tags.entries()) {
          await writeTree(src, { 'dist/x.txt': `change ${i}\n`.repeat(100 + i) });
          saved = await saveEntry(store, {
            dir: src,
            generates: ALL,
            tag,
            task: 'i2',
            key: tag,
            avgChunkSize: 4096,
            layerCap: 1,
          });
        }
        const top = await store.fetchManifest(tags[2]!);
        expect(top?.descriptor.mediaType).toBe(OCI_INDEX_MEDIA_TYPE);
        const index = JSON.parse(Buffer.from(top!.bytes).toString());
        expect(index.manifests.length).toBeGreaterThanOrEqual(2);
        const dst = await taskDir('index2-dst');
        const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag: tags[2]! });
        expect(restored?.chunksFetched).toBe(saved!.chunksTotal);
        expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
      },
    );

    it.skipIf(v2)('uses the image-index form above the layer cap and round-trips it', async () => {
      const { store } = await makeStore();
      const src = await taskDir('index');
      await writeTree(src, { 'dist/data.bin': seededBytes(300 * 1024, 5), 'dist/x.txt': 'x' });
      const tag = nextTag('index');
      const saved = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag,
        task: 'i',
        key: tag,
        avgChunkSize: 4096,
        layerCap: 7,
      });
      expect(saved.chunksTotal).toBeGreaterThan(21);
      const top = await store.fetchManifest(tag);
      expect(top?.descriptor.mediaType).toBe(OCI_INDEX_MEDIA_TYPE);
      const index = JSON.parse(Buffer.from(top!.bytes).toString());
      expect(index.manifests.length).toBe(Math.ceil(saved.chunksTotal / 7));
      expect(await hasEntry(store, tag)).toBe(true);
      const dst = await taskDir('index-dst');
      const restored = await restoreEntry(store, { dir: dst, generates: ALL, tag });
      expect(restored?.chunksFetched).toBe(saved.chunksTotal);
      expect(await treeHash(dst, 'dist')).toBe(await treeHash(src, 'dist'));
    });

    describe('hostile entries are refused, nothing is written outside, outputs untouched', () => {
      const cases: Array<[string, HostileEntry[], Tamper?]> = [
        ['../escape', [dir('dist'), file('dist/../../escape')]],
        ['../escape at the top', [file('../escape')]],
        ['absolute path', [file('/tmp/tc-absolute-escape')]],
        [
          'symlink to /etc then a file under it',
          [dir('dist'), link('dist/etc', '/etc'), file('dist/etc/tc-owned')],
        ],
        [
          'relative symlink out then a file under it',
          [dir('dist'), link('dist/up', '../..'), file('dist/up/escape')],
        ],
        [
          'a file written through an inside symlink',
          [dir('dist'), dir('dist/sub'), link('dist/l', 'sub'), file('dist/l/x')],
        ],
        [
          'a symlink chain leaving the directory',
          [dir('dist'), dir('dist/a'), link('dist/a/up', '../..'), link('dist/b', 'a/up/..')],
        ],
        ['hardlink', [dir('dist'), file('dist/a'), hardlink('dist/b', 'dist/a')]],
        ['device node', [dir('dist'), device('dist/null')]],
        ['FIFO', [dir('dist'), fifo('dist/fifo')]],
        ['setuid bit', [dir('dist'), file('dist/suid', 'x', 0o4755)]],
        ['setgid bit', [dir('dist'), file('dist/sgid', 'x', 0o2755)]],
        ['path outside generates', [file('src/injected.ts')]],
        ["a path in core's scratch namespace", [file('.task-cache-old-x/dist/a')]],
        [
          'chunk that decompresses past its declared size',
          [dir('dist'), file('dist/a', 'a'.repeat(4000))],
          { declaredSize: 512 },
        ],
        [
          'chunk whose uncompressed digest does not match',
          [dir('dist'), file('dist/a', 'abc')],
          { declaredDigest: `sha256:${'0'.repeat(64)}` },
        ],
      ];
      for (const [label, entries, tamper] of cases) {
        it(label, async () => {
          const { store } = await makeStore();
          const outer = await taskDir('hostile');
          const task = join(outer, 'task');
          await writeTree(task, { 'dist/existing.js': 'previous build', 'src/main.ts': 'source' });
          const before = await treeHash(task);
          const tag = nextTag('hostile');
          await pushHostile(store, tag, entries, tamper, options.form);
          const err = await restoreEntry(store, { dir: task, generates: ALL, tag }).catch((e) => e);
          if (process.env.TC_DEBUG) console.log(label, '→', err?.code, err?.message);
          expect(err).toBeInstanceOf(EntryError);
          const expected =
            tamper?.declaredSize !== undefined
              ? 'CACHE_ERR_ENTRY_TOO_LARGE'
              : tamper?.declaredDigest
                ? 'CACHE_ERR_ENTRY_CORRUPT'
                : 'CACHE_ERR_ENTRY_REFUSED';
          expect(err.code).toBe(expected);
          expect(await treeHash(task)).toBe(before);
          expect(await readdir(outer)).toEqual(['task']);
          await expect(stat(join(outer, 'escape'))).rejects.toThrow();
          await expect(stat('/tmp/tc-absolute-escape')).rejects.toThrow();
          await expect(stat('/etc/tc-owned')).rejects.toThrow();
        });
      }
    });

    // Issue 16: every case of the hostile tar builder (pax, GNU long names, global headers,
    // base-256 fields, trailing data) is a typed refusal; no raw Node error escapes.
    describe('hand-written hostile archives are typed refusals (issue 16)', () => {
      const longComponent = `dist/${'n'.repeat(300)}`;
      const longPath = `dist/${`${'d'.repeat(200)}/`.repeat(25)}f`;
      const cases: Array<[string, TarRecord[], string, Tamper?]> = [
        [
          'pax path with ..',
          [{ kind: 'pax', attrs: { path: '../escape' } }, tarFile('dist/ok'), tarEnd()],
          'REFUSED',
        ],
        [
          'pax linkpath to /etc',
          [
            tarDir('dist'),
            { kind: 'pax', attrs: { linkpath: '/etc/passwd' } },
            tarSymlink('dist/l', 'ok'),
            tarEnd(),
          ],
          'REFUSED',
        ],
        [
          'pax global header',
          [{ kind: 'pax', global: true, attrs: { path: 'dist/g' } }, tarFile('dist/a'), tarEnd()],
          'CORRUPT',
        ],
        [
          'pax size that is not a number',
          [{ kind: 'pax', attrs: { size: '-5' } }, tarFile('dist/a'), tarEnd()],
          'CORRUPT',
        ],
        [
          'pax header without its entry',
          [tarFile('dist/a'), { kind: 'pax', attrs: { path: 'dist/b' } }, tarEnd()],
          'CORRUPT',
        ],
        [
          'GNU long name with ..',
          [{ kind: 'gnu-long-name', value: '../../escape' }, tarFile('dist/a'), tarEnd()],
          'REFUSED',
        ],
        [
          'GNU long link name leaving the directory',
          [
            tarDir('dist'),
            { kind: 'gnu-long-link', value: `../../${'x'.repeat(120)}` },
            tarSymlink('dist/l', 'ok'),
            tarEnd(),
          ],
          'REFUSED',
        ],
        // Regression (issue 16): raw ENAMETOOLONG escaped from the restore.
        [
          'a 300-byte path component',
          [{ kind: 'gnu-long-name', value: longComponent }, tarFile('x'), tarEnd()],
          'REFUSED',
        ],
        [
          'a 5 000-byte path',
          [{ kind: 'gnu-long-name', value: longPath }, tarFile('x'), tarEnd()],
          'REFUSED',
        ],
        ['base-256 negative size', [tarFile('dist/a', 'x', { size: { base256: -1 } }), tarEnd()], 'CORRUPT'],
        [
          'base-256 size of 2^62',
          [tarFile('dist/a', 'x', { size: { base256: 2n ** 62n } }), tarEnd()],
          'CORRUPT',
        ],
        [
          'base-256 size past the data',
          [tarFile('dist/a', 'x', { size: { base256: 2 ** 30 } }), tarEnd()],
          'CORRUPT',
        ],
        // Regression (issue 16): a kept mtime of 2^62 gave a raw EINVAL from utime.
        [
          'base-256 mtime of 2^62 (kept mtimes)',
          [tarFile('dist/a', 'x', { mtime: { base256: 2n ** 62n } }), tarEnd()],
          'REFUSED',
          { mtimes: 'kept' },
        ],
        // Regression (issue 16): data after the end-of-archive blocks was extracted.
        [
          'data after the end of the archive',
          [tarFile('dist/a'), tarEnd(), tarFile('dist/b'), tarEnd()],
          'CORRUPT',
        ],
        [
          'garbage after the end of the archive',
          [tarFile('dist/a'), tarEnd(), { kind: 'raw', bytes: 'x'.repeat(512) }],
          'CORRUPT',
        ],
        // Regression (issue 16): a file dist/a/x then a symlink dist/a gave a raw EEXIST.
        [
          'a file under dist/a, then a symlink dist/a',
          [tarFile('dist/a/x'), tarSymlink('dist/a', 'b'), tarEnd()],
          'REFUSED',
        ],
        ['a bad header checksum', [tarFile('dist/a', 'x', { checksum: 1 }), tarEnd()], 'CORRUPT'],
      ];
      for (const [label, records, code, tamper] of cases) {
        it(label, async () => {
          const { store } = await makeStore();
          const outer = await taskDir('hostile-tar');
          const task = join(outer, 'task');
          await writeTree(task, { 'dist/existing.js': 'previous build', 'src/main.ts': 'source' });
          const before = await treeHash(task);
          const tag = nextTag('hostile-tar');
          await pushArchive(store, tag, hostileTar(records), 1, tamper, options.form);
          const err = await restoreEntry(store, { dir: task, generates: ALL, tag }).catch((e) => e);
          if (process.env.TC_DEBUG) console.log(label, '→', err?.code, err?.message);
          // No raw Node error: a project error with a prefixed code.
          expect(err).toBeInstanceOf(TaskCacheError);
          expect(err.code).toBe(`CACHE_ERR_ENTRY_${code}`);
          expect(await treeHash(task)).toBe(before);
          expect(await readdir(outer)).toEqual(['task']);
        });
      }
      it('the benign forms restore: pax path, GNU long name, base-256 uid and mtime, zero padding', async () => {
        const { store } = await makeStore();
        const task = await taskDir('benign-tar');
        const long = `dist/${'l'.repeat(150)}/${'f'.repeat(120)}`;
        const tag = nextTag('benign-tar');
        const raw = hostileTar([
          tarDir('dist'),
          { kind: 'pax', attrs: { path: 'dist/from-pax.txt' } },
          tarFile('ignored-name', 'pax'),
          { kind: 'gnu-long-name', value: long },
          tarFile('ignored-too', 'gnu'),
          tarFile('dist/b256', 'b', { uid: { base256: 1000 }, mtime: { base256: 1_600_000_000 } }),
          tarEnd(4),
        ]);
        await pushArchive(store, tag, raw, 3, { mtimes: 'kept' }, options.form);
        const r = await restoreEntry(store, { dir: task, generates: ALL, tag });
        expect(r?.files).toBe(3);
        expect(await readFile(join(task, 'dist/from-pax.txt'), 'utf8')).toBe('pax');
        expect(await readFile(join(task, long), 'utf8')).toBe('gnu');
        expect((await stat(join(task, 'dist/b256'))).mtimeMs).toBe(1_600_000_000_000);
      });
    });

    // Regression (issue 16): a target lexically inside reached outside through a symlink that was
    // already in the task directory.
    it('refuses a symlink that leaves through a symlink already in the task directory', async () => {
      const { store } = await makeStore();
      const outer = await taskDir('escape-read');
      const task = join(outer, 'task');
      await writeTree(outer, { 'outside/secret': 'not yours' });
      await writeTree(task, { 'dist/existing.js': 'previous build' });
      await symlink('../outside', join(task, 'vendor'));
      const before = await treeHash(task);
      const tag = nextTag('escape-read');
      await pushHostile(store, tag, [dir('dist'), link('dist/v', '../vendor/secret')], {}, options.form);
      const err = await restoreEntry(store, { dir: task, generates: ALL, tag }).catch((e) => e);
      expect(err).toBeInstanceOf(EntryError);
      expect(err.code).toBe('CACHE_ERR_ENTRY_REFUSED');
      expect(err.message).toMatch(/resolves outside the task directory/);
      expect(await treeHash(task)).toBe(before);
      // An inside target through an inside symlink still restores.
      await mkdir(join(task, 'assets'));
      await writeFile(join(task, 'assets/logo.svg'), '<svg/>');
      await symlink('assets', join(task, 'static'));
      const ok = nextTag('inside-read');
      await pushHostile(
        store,
        ok,
        [dir('dist'), link('dist/logo.svg', '../static/logo.svg')],
        {},
        options.form,
      );
      expect(await restoreEntry(store, { dir: task, generates: ALL, tag: ok })).toBeDefined();
      expect(await readFile(join(task, 'dist/logo.svg'), 'utf8')).toBe('<svg/>');
    });

    // Issue 16: with generates overlapping sources, a restore never modifies a source file.
    describe('protected sources (issue 16)', () => {
      const layout = {
        'src/main.ts': 'export const main = 1;\n',
        'dist/old.js': 'stale output',
        '.git/config': '[core]\n',
        'README.md': 'readme',
      };
      it('an entry replacing a source file is refused; the sources and .git stay', async () => {
        const { store } = await makeStore();
        const task = await taskDir('poisoned');
        await writeTree(task, layout);
        const before = await treeHash(task);
        const tag = nextTag('poisoned');
        await pushHostile(
          store,
          tag,
          [dir('src'), file('src/main.ts', 'process.exit(13)'), dir('dist'), file('dist/x', '1')],
          {},
          options.form,
        );
        const err = await restoreEntry(store, {
          dir: task,
          generates: ['src/**', 'dist/**'],
          protect: ['src/**'],
          tag,
        }).catch((e) => e);
        expect(err).toBeInstanceOf(EntryError);
        expect(err.code).toBe('CACHE_ERR_ENTRY_REFUSED');
        expect(await treeHash(task)).toBe(before);
        const git = nextTag('poisoned-git');
        await pushHostile(
          store,
          git,
          [dir('.git'), file('.git/config', '[core]\n\thooksPath = /tmp\n')],
          {},
          options.form,
        );
        const gitErr = await restoreEntry(store, {
          dir: task,
          generates: ['**'],
          allowBroadGenerates: true,
          tag: git,
        }).catch((e) => e);
        expect(gitErr?.code).toBe('CACHE_ERR_ENTRY_REFUSED');
        expect(await treeHash(task)).toBe(before);
      });
      it('a restore with overlapping or broad generates removes only extra outputs, never sources or .git', async () => {
        const { store } = await makeStore();
        const task = await taskDir('broad');
        await writeTree(task, layout);
        const tag = nextTag('broad');
        await pushHostile(store, tag, [dir('dist'), file('dist/x', 'new')], {}, options.form);
        const r = await restoreEntry(store, {
          dir: task,
          generates: ['src/**', 'dist/**'],
          protect: ['src/**'],
          tag,
        });
        expect(r?.removed).toBe(1);
        expect(await readFile(join(task, 'src/main.ts'), 'utf8')).toBe(layout['src/main.ts']);
        await expect(stat(join(task, 'dist/old.js'))).rejects.toThrow();
        await writeFile(join(task, 'dist/old.js'), 'stale again');
        const broad = await restoreEntry(store, {
          dir: task,
          generates: ['**'],
          allowBroadGenerates: true,
          protect: ['src/**', 'README.md'],
          tag,
        });
        expect(broad?.removed).toBe(1);
        expect(await readFile(join(task, 'src/main.ts'), 'utf8')).toBe(layout['src/main.ts']);
        expect(await readFile(join(task, '.git/config'), 'utf8')).toBe(layout['.git/config']);
        expect(await readFile(join(task, 'README.md'), 'utf8')).toBe('readme');
        expect(await readFile(join(task, 'dist/x'), 'utf8')).toBe('new');
        // Without the opt-in, '**' is refused before anything is fetched.
        await expect(restoreEntry(store, { dir: task, generates: ['**'], tag })).rejects.toMatchObject({
          code: 'CACHE_ERR_INVALID_OPTION',
        });
      });
      it('a save with broad generates never stores sources or .git', async () => {
        const { store } = await makeStore();
        const src = await taskDir('broad-save');
        await writeTree(src, layout);
        const tag = nextTag('broad-save');
        const saved = await saveEntry(store, {
          dir: src,
          generates: ['**'],
          allowBroadGenerates: true,
          protect: ['src/**', 'README.md'],
          tag,
          task: 'build',
          key: tag,
        });
        expect(saved.files).toBe(1);
        const dst = await taskDir('broad-restore');
        await restoreEntry(store, { dir: dst, generates: ['dist/**'], tag });
        expect(await readdir(dst)).toEqual(['dist']);
      });
    });

    it('an aborted restore leaves the previous outputs intact', async () => {
      const { store } = await makeStore();
      const src = await taskDir('abort-src');
      await writeTree(src, {
        'dist/a.bin': seededBytes(1024 * 1024, 1),
        'dist/b.bin': seededBytes(1024 * 1024, 2),
      });
      const tag = nextTag('abort');
      const saved = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag,
        task: 'a',
        key: tag,
        avgChunkSize: 16 * 1024,
      });
      expect(saved.chunksTotal).toBeGreaterThan(20);
      const dst = await taskDir('abort-dst');
      await writeTree(dst, { 'dist/a.bin': 'old a', 'dist/old.txt': 'old' });
      const before = await treeHash(dst);
      const ac = new AbortController();
      const err = await restoreEntry(store, {
        dir: dst,
        generates: ALL,
        tag,
        concurrency: 2,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.chunksDone === 5) ac.abort(new Error('stop here'));
        },
      }).catch((e) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toBe('stop here');
      expect(await treeHash(dst)).toBe(before);
      // The abort removed the staging (issue 16: wire SIGINT/SIGTERM to the signal).
      expect((await readdir(dst)).filter((n) => n.startsWith('.task-cache-'))).toEqual([]);
    });

    it('an aborted save leaves no tag', async () => {
      const { store } = await makeStore();
      const src = await taskDir('abort-save');
      await writeTree(src, { 'dist/a.bin': seededBytes(1024 * 1024, 3) });
      const tag = nextTag('abort-save');
      const ac = new AbortController();
      const err = await saveEntry(store, {
        dir: src,
        generates: ALL,
        tag,
        task: 'a',
        key: tag,
        avgChunkSize: 16 * 1024,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.chunksDone === 3) ac.abort(new Error('stop save'));
        },
      }).catch((e) => e);
      expect(err?.message).toBe('stop save');
      expect(await hasEntry(store, tag)).toBe(false);
    });

    if (options.tamper)
      it('a chunk that fails verification in the store is a typed error and outputs stay', async () => {
        const fx = await makeStore();
        if (!fx.tamperBlob) throw new Error('fixture declared tamper: true without tamperBlob');
        const src = await taskDir('tamper');
        await writeTree(src, { 'dist/a.txt': 'a'.repeat(10_000) });
        const tag = nextTag('tamper');
        await saveEntry(fx.store, { dir: src, generates: ALL, tag, task: 't', key: tag });
        const manifest = JSON.parse(Buffer.from((await fx.store.fetchManifest(tag))!.bytes).toString());
        await fx.tamperBlob(manifest.layers[0].digest, new Uint8Array([1, 2, 3]));
        const dst = await taskDir('tamper-dst');
        await writeTree(dst, { 'dist/a.txt': 'old' });
        const err = await restoreEntry(fx.store, { dir: dst, generates: ALL, tag }).catch((e) => e);
        expect(err).toBeInstanceOf(EntryError);
        expect(err.code).toBe('CACHE_ERR_ENTRY_CORRUPT');
        expect(await readFile(join(dst, 'dist/a.txt'), 'utf8')).toBe('old');
      });

    if (options.tamper)
      it('a chunk tampered at its own size is caught by the uncompressed digest of the config (the store checks only the size of chunks)', async () => {
        const fx = await makeStore();
        if (!fx.tamperBlob) throw new Error('fixture declared tamper: true without tamperBlob');
        const src = await taskDir('tamper-same-size');
        await writeTree(src, { 'dist/a.bin': seededBytes(64 * 1024, 9) });
        const tag = nextTag('tamper-same-size');
        await saveEntry(fx.store, { dir: src, generates: ALL, tag, task: 't', key: tag });
        const manifest = JSON.parse(Buffer.from((await fx.store.fetchManifest(tag))!.bytes).toString());
        const layer = manifest.layers[0];
        const parts: Uint8Array[] = [];
        for await (const piece of await fx.store.fetchBlob(layer)) parts.push(piece);
        const bytes = new Uint8Array(Buffer.concat(parts));
        // One byte of the payload flipped, far from the frame header: same size, other content.
        const at = bytes.byteLength - 100;
        bytes[at] = (bytes[at] as number) ^ 0xff;
        await fx.tamperBlob(layer.digest, bytes);
        const dst = await taskDir('tamper-same-size-dst');
        await writeTree(dst, { 'dist/a.bin': 'old' });
        const err = await restoreEntry(fx.store, { dir: dst, generates: ALL, tag }).catch((e) => e);
        expect(err).toBeInstanceOf(EntryError);
        expect(err.code).toBe('CACHE_ERR_ENTRY_CORRUPT');
        expect(await readFile(join(dst, 'dist/a.bin'), 'utf8')).toBe('old');
      });

    if (options.tamper)
      it('an entry with a missing chunk is a miss and outputs stay', async () => {
        const fx = await makeStore();
        if (!fx.removeBlob) throw new Error('fixture declared tamper: true without removeBlob');
        const src = await taskDir('missing');
        await writeTree(src, { 'dist/a.bin': seededBytes(200 * 1024, 8) });
        const tag = nextTag('missing');
        await saveEntry(fx.store, {
          dir: src,
          generates: ALL,
          tag,
          task: 't',
          key: tag,
          avgChunkSize: 16 * 1024,
        });
        const manifest = JSON.parse(Buffer.from((await fx.store.fetchManifest(tag))!.bytes).toString());
        await fx.removeBlob(manifest.layers[manifest.layers.length - 1].digest);
        const dst = await taskDir('missing-dst');
        await writeTree(dst, { 'dist/a.bin': 'old' });
        expect(await restoreEntry(fx.store, { dir: dst, generates: ALL, tag })).toBeUndefined();
        expect(await readFile(join(dst, 'dist/a.bin'), 'utf8')).toBe('old');
      });
  });
}
