import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir, writeTree } from '../../test/helpers.js';
import { EntryCorruptError, EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { createMemoryStore } from '../store/memory.js';
import {
  CHUNK_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  PACK_MEDIA_TYPE,
} from './format.js';
import { hasEntry, lookupEntry } from './resolve.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';
import type { EntryReader } from './types.js';

let root: string;
const store = createMemoryStore({ name: 'lookup-test' });
beforeAll(async () => {
  root = await tempDir('tc-lookup-');
  await writeTree(join(root, 'src'), { 'dist/a.txt': 'alpha', 'dist/b/c.txt': 'gamma' });
  await saveEntry(store, {
    dir: join(root, 'src'),
    generates: ['dist/**'],
    tag: 'e1',
    task: 't',
    key: 'e1',
    stateDir: false,
    formatVersion: 2,
  });
  // The same outputs in format version 1.
  await saveEntry(store, {
    dir: join(root, 'src'),
    generates: ['dist/**'],
    tag: 'e1-v1',
    task: 't',
    key: 'e1-v1',
    stateDir: false,
    formatVersion: 1,
  });
});
afterAll(async () => {
  await removeDir(root);
});

let seq = 0;
const target = async () => {
  const dir = join(root, `dst-${++seq}`);
  await mkdir(dir);
  return dir;
};

describe('lookupEntry → restoreEntry({ entry }): the entry is resolved once', () => {
  it.each([
    { formatVersion: 1, tag: 'e1-v1', config: ENTRY_CONFIG_MEDIA_TYPE, layer: CHUNK_MEDIA_TYPE },
    { formatVersion: 2, tag: 'e1', config: ENTRY_CONFIG_MEDIA_TYPE_V2, layer: PACK_MEDIA_TYPE },
  ])('a three-line fake reader is enough, and the restore fetches only the chunks (format v$formatVersion)', async ({
    formatVersion,
    tag,
    config,
    layer,
  }) => {
    const calls: string[] = [];
    const reader: EntryReader = {
      fetchManifest: (ref, o) => store.fetchManifest(ref, o).finally(() => calls.push(`manifest ${ref}`)),
      fetchBlob: (d, o) => store.fetchBlob(d, o).finally(() => calls.push(`blob ${d.mediaType}`)),
    };
    const entry = await lookupEntry(reader, { tag });
    expect(entry).toMatchObject({ tag, config: { task: 't', files: 2, formatVersion } });
    expect(calls).toEqual([`manifest ${tag}`, `blob ${config}`]);
    calls.length = 0;
    const dir = await target();
    const restored = await restoreEntry(reader, {
      dir,
      generates: ['dist/**'],
      entry: entry!,
      stateDir: false,
    });
    expect(restored).toMatchObject({ digest: entry!.digest, files: 2 });
    // One request per chunk (v1), one per run of adjacent frames (v2: here one pack, one run).
    expect(calls.every((c) => c === `blob ${layer}`)).toBe(true);
    expect(calls).toHaveLength(entry!.layers.length);
    expect(await readFile(join(dir, 'dist/b/c.txt'), 'utf8')).toBe('gamma');
  });

  it('a miss is undefined; hasEntry still answers for callers who only ask', async () => {
    expect(await lookupEntry(store, { tag: 'nope' })).toBeUndefined();
    expect(await hasEntry(store, 'nope')).toBe(false);
    expect(await hasEntry(store, 'e1')).toBe(true);
  });

  it('the resolved entry is frozen; only entries from lookupEntry are accepted', async () => {
    const entry = (await lookupEntry(store, { tag: 'e1' }))!;
    expect(Object.isFrozen(entry)).toBe(true);
    expect(Object.isFrozen(entry.config.chunks[0])).toBe(true);
    const forged = JSON.parse(JSON.stringify(entry));
    const dir = await target();
    const err = await restoreEntry(store, { dir, generates: ['dist/**'], entry: forged }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.field).toBe('entry');
    const both = await restoreEntry(store, {
      dir,
      generates: ['dist/**'],
      entry,
      tag: 'e1',
    } as never).catch((e) => e);
    expect(both).toBeInstanceOf(InvalidOptionError);
    const neither = await restoreEntry(store, { dir, generates: ['dist/**'] } as never).catch((e) => e);
    expect(neither).toBeInstanceOf(InvalidOptionError);
  });

  it("the restore's own maxEntrySize applies to a resolved entry", async () => {
    const entry = (await lookupEntry(store, { tag: 'e1' }))!;
    const err = await restoreEntry(store, {
      dir: await target(),
      generates: ['dist/**'],
      entry,
      maxEntrySize: 10,
      stateDir: false,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(EntryTooLargeError);
    await expect(lookupEntry(store, { tag: 'e1', maxEntrySize: 10 })).rejects.toBeInstanceOf(
      EntryTooLargeError,
    );
  });

  it('a config failing verification is EntryCorruptError at lookup', async () => {
    const bad = createMemoryStore({ name: 'lookup-tampered' });
    await saveEntry(bad, {
      dir: join(root, 'src'),
      generates: ['dist/**'],
      tag: 'x',
      task: 't',
      key: 'x',
      stateDir: false,
    });
    const entry = (await lookupEntry(bad, { tag: 'x' }))!;
    bad.corruptBlob(entry.configDescriptor.digest, new TextEncoder().encode('{"not":"it"}'));
    await expect(lookupEntry(bad, { tag: 'x' })).rejects.toBeInstanceOf(EntryCorruptError);
  });

  it('options are validated with the field named', async () => {
    await expect(lookupEntry(store, { tag: 'has space' })).rejects.toMatchObject({ field: 'tag' });
    await expect(lookupEntry(store, { tag: 'e1', maxEntrySize: -1 })).rejects.toMatchObject({
      field: 'maxEntrySize',
    });
  });
});
