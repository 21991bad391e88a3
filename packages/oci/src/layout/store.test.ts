import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { descriptorOf, sha256Digest } from '../digest.js';
import { LayoutInvalidError, LayoutVersionUnsupportedError, LockTimeoutError, OciError } from '../errors.js';
import type { Descriptor } from '../types.js';
import { inProcessLocker } from './lock.js';
import { createLayoutStore, type LayoutStore, REF_NAME_ANNOTATION } from './store.js';

const MiB = 1024 * 1024;
const CONFIG_TYPE = 'application/vnd.task-cache.entry.config.v1+json';
const LAYER_TYPE = 'application/vnd.task-cache.chunk.v1+zstd';
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

let dir: string;
let store: LayoutStore;

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'tc-layout-')), 'layout');
  store = createLayoutStore(dir, { fsync: false });
});
afterEach(async () => {
  await store.close();
  await rm(join(dir, '..'), { recursive: true, force: true });
});

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

async function toArray<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

function blobPath(digest: string): string {
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** Pushes a config and one layer and returns an artifact manifest referencing them. */
async function pushArtifact(
  s: LayoutStore,
  seed: string,
): Promise<{ bytes: Uint8Array; layers: Descriptor[] }> {
  const config = new TextEncoder().encode(JSON.stringify({ seed }));
  const layer = new TextEncoder().encode(`layer ${seed}`);
  const configDesc = descriptorOf(config, CONFIG_TYPE);
  const layerDesc = descriptorOf(layer, LAYER_TYPE);
  await s.pushBlob(configDesc, config);
  await s.pushBlob(layerDesc, layer);
  const manifest = {
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    artifactType: 'application/vnd.task-cache.entry.v1',
    config: configDesc,
    layers: [layerDesc],
  };
  return { bytes: new TextEncoder().encode(JSON.stringify(manifest)), layers: [configDesc, layerDesc] };
}

describe('createLayoutStore: blobs', () => {
  it.each([
    ['0 B', 0],
    ['1 B', 1],
    ['5 MiB', 5 * MiB],
  ])('round-trips a %s blob', async (_name, size) => {
    const bytes = randomBytes(size);
    const d = descriptorOf(bytes, 'application/octet-stream');
    expect(await store.blobExists(d)).toBe(false);
    await store.pushBlob(d, bytes);
    expect(await store.blobExists(d)).toBe(true);
    expect((await stat(blobPath(d.digest))).size).toBe(size);
    expect((await collect(await store.fetchBlob(d))).equals(bytes)).toBe(true);
  });

  it('streams a body given as an async iterable factory and as a bare iterable', async () => {
    const parts = [randomBytes(1000), randomBytes(70_000), randomBytes(3)];
    const all = Buffer.concat(parts);
    const d = descriptorOf(all, 'application/octet-stream');
    await store.pushBlob(d, async function* () {
      yield* parts;
    });
    expect((await collect(await store.fetchBlob(d))).equals(all)).toBe(true);
    await rm(blobPath(d.digest));
    await store.pushBlob(
      d,
      (async function* () {
        yield* parts;
      })(),
    );
    expect((await collect(await store.fetchBlob(d))).equals(all)).toBe(true);
  });

  it('creates the layout lazily with oci-layout 1.0.0 on the first write only', async () => {
    const d = descriptorOf(new Uint8Array([1]), 'x/y');
    expect(await store.blobExists(d)).toBe(false);
    expect(await store.fetchManifest('latest')).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
    await store.pushBlob(d, new Uint8Array([1]));
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
  });

  it('is idempotent when the blob is already present and leaves no temp files', async () => {
    const bytes = randomBytes(100);
    const d = descriptorOf(bytes, 'x/y');
    await store.pushBlob(d, bytes);
    await store.pushBlob(d, bytes);
    await Promise.all([store.pushBlob(d, bytes), store.pushBlob(d, bytes)]);
    expect(await readdir(join(dir, 'blobs', 'sha256'))).toEqual([d.digest.slice(7)]);
  });

  it('refuses a body that does not match its descriptor and keeps nothing of it', async () => {
    const bytes = randomBytes(1000);
    const d = descriptorOf(bytes, 'x/y');
    const wrong = Buffer.from(bytes);
    wrong[10] = (wrong[10]! + 1) % 256;
    await expect(store.pushBlob(d, wrong)).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
    await expect(store.pushBlob(d, bytes.subarray(1))).rejects.toMatchObject({
      code: 'OCI_ERR_SIZE_MISMATCH',
    });
    await expect(store.pushBlob({ ...d, size: 999 }, bytes)).rejects.toMatchObject({
      code: 'OCI_ERR_SIZE_MISMATCH',
    });
    expect(await store.blobExists(d)).toBe(false);
    expect(await readdir(join(dir, 'blobs', 'sha256'))).toEqual([]);
  });

  it('a missing blob is a typed BLOB_UNKNOWN error', async () => {
    const d = descriptorOf(new Uint8Array([7]), 'x/y');
    await expect(store.fetchBlob(d)).rejects.toMatchObject({
      code: 'OCI_ERR_BLOB_UNKNOWN',
      digest: d.digest,
    });
  });

  it('detects a blob modified on disk with a typed digest error', async () => {
    const bytes = randomBytes(2 * MiB);
    const d = descriptorOf(bytes, 'x/y');
    await store.pushBlob(d, bytes);
    const tampered = Buffer.from(bytes);
    tampered[MiB] = (tampered[MiB]! + 1) % 256;
    await writeFile(blobPath(d.digest), tampered);
    const error = await collect(await store.fetchBlob(d)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OciError);
    expect(error).toMatchObject({
      name: 'DigestMismatchError',
      code: 'OCI_ERR_DIGEST_MISMATCH',
      digest: d.digest,
    });
    await writeFile(blobPath(d.digest), bytes.subarray(0, 100));
    await expect(collect(await store.fetchBlob(d))).rejects.toMatchObject({ code: 'OCI_ERR_SIZE_MISMATCH' });
  });

  it('rejects malformed digests and sizes before touching the disk', async () => {
    await expect(store.fetchBlob({ mediaType: 'x', digest: 'sha256:abc', size: 1 })).rejects.toMatchObject({
      code: 'OCI_ERR_DIGEST_INVALID',
    });
    await expect(
      store.pushBlob({ mediaType: 'x', digest: `md5:${'a'.repeat(32)}`, size: 1 }, new Uint8Array(1)),
    ).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_INVALID' });
    await expect(
      store.pushBlob(
        { mediaType: 'x', digest: sha256Digest(new Uint8Array(1)), size: -1 },
        new Uint8Array(1),
      ),
    ).rejects.toMatchObject({ code: 'OCI_ERR_SIZE_INVALID' });
    expect(existsSync(dir)).toBe(false);
  });

  it('stops when the signal fires', async () => {
    const bytes = randomBytes(10);
    const d = descriptorOf(bytes, 'x/y');
    await expect(store.pushBlob(d, bytes, { signal: AbortSignal.abort() })).rejects.toThrow(/abort/i);
    await store.pushBlob(d, bytes);
    const controller = new AbortController();
    const stream = await store.fetchBlob(d, { signal: controller.signal });
    controller.abort();
    await expect(collect(stream)).rejects.toThrow(/abort/i);
  });
});

describe('createLayoutStore: manifests and tags', () => {
  it('round-trips a manifest byte-exact by tag and by digest', async () => {
    const { bytes } = await pushArtifact(store, 'a');
    const desc = await store.pushManifest(bytes, MANIFEST_TYPE, { tag: 'v1' });
    expect(desc).toEqual({
      mediaType: MANIFEST_TYPE,
      digest: sha256Digest(bytes),
      size: bytes.byteLength,
      artifactType: 'application/vnd.task-cache.entry.v1',
    });
    const byTag = await store.fetchManifest('v1');
    expect(Buffer.from(byTag!.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(byTag!.descriptor).toEqual(desc);
    const byDigest = await store.fetchManifest(desc.digest);
    expect(Buffer.from(byDigest!.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(byDigest!.descriptor.mediaType).toBe(MANIFEST_TYPE);

    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    expect(index).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ ...desc, annotations: { [REF_NAME_ANNOTATION]: 'v1' } }],
    });
  });

  it('round-trips an image index referencing manifests', async () => {
    const a = await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE);
    const b = await store.pushManifest((await pushArtifact(store, 'b')).bytes, MANIFEST_TYPE);
    const indexType = 'application/vnd.oci.image.index.v1+json';
    const bytes = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: indexType, manifests: [a, b] }),
    );
    const desc = await store.pushManifest(bytes, indexType, { tag: 'multi' });
    const fetched = await store.fetchManifest('multi');
    expect(fetched?.descriptor).toEqual({
      mediaType: indexType,
      digest: desc.digest,
      size: bytes.byteLength,
    });
    expect(Buffer.from(fetched!.bytes).equals(Buffer.from(bytes))).toBe(true);
  });

  it('misses are undefined: unknown tag, unknown digest, no layout at all', async () => {
    expect(await store.fetchManifest('nope')).toBeUndefined();
    expect(await store.fetchManifest(sha256Digest(new Uint8Array(3)))).toBeUndefined();
    expect(await toArray(store.listTags())).toEqual([]);
    await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE, { tag: 'x' });
    expect(await store.fetchManifest('nope')).toBeUndefined();
  });

  it('refuses a manifest whose blobs are missing, naming them', async () => {
    const { bytes, layers } = await pushArtifact(store, 'a');
    await rm(blobPath(layers[1]!.digest));
    const error = await store.pushManifest(bytes, MANIFEST_TYPE, { tag: 't' }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'OCI_ERR_MANIFEST_BLOB_UNKNOWN',
      missingDigests: [layers[1]!.digest],
    });
    expect(await store.fetchManifest('t')).toBeUndefined();
  });

  it('refuses bad manifests and tags with typed errors', async () => {
    const { bytes } = await pushArtifact(store, 'a');
    await expect(store.pushManifest(bytes, 'application/vnd.oci.image.index.v1+json')).rejects.toMatchObject({
      code: 'OCI_ERR_MANIFEST_INVALID',
    });
    await expect(store.pushManifest(new TextEncoder().encode('{nope'), MANIFEST_TYPE)).rejects.toMatchObject({
      code: 'OCI_ERR_MANIFEST_INVALID',
    });
    for (const tag of ['.hidden', '-dash', 'a'.repeat(129), 'has:colon', '']) {
      await expect(store.pushManifest(bytes, MANIFEST_TYPE, { tag })).rejects.toMatchObject({
        code: 'OCI_ERR_TAG_INVALID',
      });
    }
    await store.pushManifest(bytes, MANIFEST_TYPE, { tag: 'a'.repeat(128) });
    expect(await toArray(store.listTags())).toEqual(['a'.repeat(128)]);
  });

  it('tagging an unknown manifest is MANIFEST_UNKNOWN', async () => {
    const digest = sha256Digest(new Uint8Array(5));
    await expect(store.tag({ mediaType: MANIFEST_TYPE, digest, size: 5 }, 'x')).rejects.toMatchObject({
      code: 'OCI_ERR_MANIFEST_UNKNOWN',
    });
  });

  it('a tag move replaces the old descriptor for that ref name; other tags stay', async () => {
    const a = await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE, {
      tag: 'latest',
    });
    await store.tag(a, 'stable');
    const b = await store.pushManifest((await pushArtifact(store, 'b')).bytes, MANIFEST_TYPE, {
      tag: 'latest',
    });
    expect((await store.fetchManifest('latest'))?.descriptor.digest).toBe(b.digest);
    expect((await store.fetchManifest('stable'))?.descriptor.digest).toBe(a.digest);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    expect(index.manifests.map((d: Descriptor) => [d.annotations?.[REF_NAME_ANNOTATION], d.digest])).toEqual([
      ['stable', a.digest],
      ['latest', b.digest],
    ]);
    // Lexical, whatever the index.json order (the store contract's order).
    expect(await toArray(store.listTags())).toEqual(['latest', 'stable']);
  });

  it('deleteManifest removes every entry for the digest; gc then deletes unreachable blobs only', async () => {
    const art = await pushArtifact(store, 'a');
    const a = await store.pushManifest(art.bytes, MANIFEST_TYPE, { tag: 'one' });
    await store.tag(a, 'two');
    const kept = await pushArtifact(store, 'b');
    const b = await store.pushManifest(kept.bytes, MANIFEST_TYPE, { tag: 'keep' });
    await store.deleteManifest(a.digest);
    expect(await toArray(store.listTags())).toEqual(['keep']);
    expect(await store.fetchManifest('one')).toBeUndefined();

    // Young blobs are protected (a save may be in progress).
    expect((await store.gc()).removed).toEqual([]);
    const result = await store.gc({ minAgeMs: 0 });
    expect(result.removed.sort()).toEqual([a.digest, ...art.layers.map((d) => d.digest)].sort());
    expect(result.freedBytes).toBe(a.size + art.layers.reduce((n, d) => n + d.size, 0));
    for (const d of [b, ...kept.layers]) expect(await store.blobExists(d)).toBe(true);
    expect(Buffer.from((await store.fetchManifest('keep'))!.bytes).equals(Buffer.from(kept.bytes))).toBe(
      true,
    );
    // Deleting what is not there is not an error (the store contract's answer).
    await store.deleteManifest(a.digest);
  });

  it('gc removes abandoned temp files older than minAgeMs', async () => {
    await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE, { tag: 't' });
    const tmp = join(dir, 'blobs', 'sha256', '.tmp-abandoned');
    await writeFile(tmp, 'partial');
    const old = new Date(Date.now() - 7_200_000);
    await utimes(tmp, old, old);
    const result = await store.gc();
    expect(result).toEqual({ removed: [], freedBytes: 7 });
    expect(existsSync(tmp)).toBe(false);
  });

  it('detects a tampered manifest blob on fetch', async () => {
    const desc = await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE, {
      tag: 't',
    });
    const path = blobPath(desc.digest);
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"schemaVersion":2', '"schemaVersion":3'));
    await expect(store.fetchManifest('t')).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
    await expect(store.fetchManifest(desc.digest)).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
  });

  it('keeps foreign index.json fields and entries when it rewrites the index', async () => {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const foreign = { mediaType: MANIFEST_TYPE, digest: sha256Digest(new Uint8Array(9)), size: 9 };
    await writeFile(
      join(dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, annotations: { who: 'else' }, manifests: [foreign] }),
    );
    await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE, { tag: 't' });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    expect(index.annotations).toEqual({ who: 'else' });
    expect(index.manifests[0]).toEqual(foreign);
    expect(index.manifests).toHaveLength(2);
  });
});

describe('createLayoutStore: corrupt layouts', () => {
  async function layoutWith(index: string, layout = '{"imageLayoutVersion":"1.0.0"}'): Promise<void> {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'), layout);
    await writeFile(join(dir, 'index.json'), index);
  }

  it.each([
    ['not JSON', '{"schemaVersion":2,', /is not valid JSON/],
    ['an array', '[]', /is not a JSON object/],
    ['schemaVersion 1', '{"schemaVersion":1,"manifests":[]}', /schemaVersion 1, expected 2/],
    ['no manifests', '{"schemaVersion":2}', /no "manifests" array/],
    [
      'a bad digest',
      '{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:x","size":1}]}',
      /manifests\[0\] has an invalid digest/,
    ],
    [
      'a bad size',
      `{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"${sha256Digest(new Uint8Array())}","size":-1}]}`,
      /manifests\[0\] has an invalid size/,
    ],
    [
      'a wrong mediaType',
      '{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}',
      /has mediaType "text\/plain"/,
    ],
  ])('a corrupt index.json (%s) is a typed LAYOUT_INVALID error on read and write', async (_n, text, message) => {
    await layoutWith(text);
    for (const attempt of [
      () => store.fetchManifest('x'),
      () => toArray(store.listTags()),
      async () =>
        store.tag(await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE), 'x'),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LayoutInvalidError);
      expect(error).toMatchObject({ code: 'OCI_ERR_LAYOUT_INVALID', path: join(dir, 'index.json') });
      expect((error as Error).message).toMatch(message);
    }
    // The corrupt file was not overwritten.
    expect(await readFile(join(dir, 'index.json'), 'utf8')).toBe(text);
  });

  it('a wrong layout version is a typed LAYOUT_VERSION_UNSUPPORTED error', async () => {
    await layoutWith('{"schemaVersion":2,"manifests":[]}', '{"imageLayoutVersion":"2.0.0"}');
    const error = await store.fetchManifest('x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LayoutVersionUnsupportedError);
    expect(error).toMatchObject({
      code: 'OCI_ERR_LAYOUT_VERSION_UNSUPPORTED',
      path: join(dir, 'oci-layout'),
    });
    expect((error as Error).message).toMatch(/"2\.0\.0"; only "1\.0\.0" is supported/);
    const bytes = new Uint8Array([1]);
    await expect(createLayoutStore(dir).pushBlob(descriptorOf(bytes, 'x'), bytes)).rejects.toMatchObject({
      code: 'OCI_ERR_LAYOUT_VERSION_UNSUPPORTED',
    });
  });

  it('a malformed oci-layout is LAYOUT_INVALID', async () => {
    await layoutWith('{"schemaVersion":2,"manifests":[]}', 'nope');
    await expect(store.fetchManifest('x')).rejects.toMatchObject({ code: 'OCI_ERR_LAYOUT_INVALID' });
  });

  it('validates its options with a message naming the field', () => {
    expect(() => createLayoutStore('')).toThrow(/dir must be a non-empty path/);
    expect(() => createLayoutStore(dir, { lockTimeoutMs: -1 })).toThrow(/options\.lockTimeoutMs/);
    expect(() => createLayoutStore(dir, { staleLockMs: 0 })).toThrow(/options\.staleLockMs/);
  });
});

describe('createLayoutStore: the index lock', () => {
  // The default locker excludes writers of this process only; the cross-process lock-file algorithm
  // is @task-cache/lock's acquireLockFile (tested there), which core injects for every layout.
  it('waits for a holder in this process and then times out with a typed LOCK_TIMEOUT error', async () => {
    const s = createLayoutStore(dir, { fsync: false, lockTimeoutMs: 200 });
    const { bytes } = await pushArtifact(s, 'a');
    const lock = join(dir, 'index.json.lock');
    const held = await inProcessLocker(lock, { timeoutMs: 1_000 });
    const error = await s.pushManifest(bytes, MANIFEST_TYPE, { tag: 't' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error).toMatchObject({ code: 'OCI_ERR_LOCK_TIMEOUT', path: lock });
    await held.release();
    // The queue moves on after a timed-out waiter: the next update goes through.
    await s.pushManifest(bytes, MANIFEST_TYPE, { tag: 't' });
    expect(await toArray(s.listTags())).toEqual(['t']);
    expect(existsSync(lock)).toBe(false);
  });

  it('takes an injected locker around each index.json update, and releases it on failure too', async () => {
    const calls: unknown[][] = [];
    const s = createLayoutStore(dir, {
      fsync: false,
      lockTimeoutMs: 1234,
      staleLockMs: 567,
      locker: async (path, o) => {
        calls.push(['acquire', path, o.timeoutMs, o.staleMs, o.signal instanceof AbortSignal]);
        return { release: async () => void calls.push(['release']) };
      },
    });
    const { bytes } = await pushArtifact(s, 'a');
    const desc = await s.pushManifest(bytes, MANIFEST_TYPE, {
      tag: 't',
      signal: new AbortController().signal,
    });
    expect(calls).toEqual([['acquire', join(dir, 'index.json.lock'), 1234, 567, true], ['release']]);
    expect(existsSync(join(dir, 'index.json.lock'))).toBe(false);
    await writeFile(join(dir, 'index.json'), '{ not json');
    await expect(s.tag(desc, 'u')).rejects.toBeInstanceOf(LayoutInvalidError);
    expect(calls.at(-1)).toEqual(['release']);
  });

  it('many concurrent taggers in one process lose no tag', async () => {
    const desc = await store.pushManifest((await pushArtifact(store, 'a')).bytes, MANIFEST_TYPE);
    const tags = Array.from({ length: 40 }, (_, i) => `t${i}`);
    await Promise.all(tags.map((t) => store.tag(desc, t)));
    expect((await toArray(store.listTags())).sort()).toEqual([...tags].sort());
    expect(existsSync(join(dir, 'index.json.lock'))).toBe(false);
  });
});

describe('createLayoutStore: waiting for the lock', () => {
  it('stops waiting promptly when the signal fires', async () => {
    const s = createLayoutStore(dir, { fsync: false, lockTimeoutMs: 60_000 });
    const desc = await s.pushManifest((await pushArtifact(s, 'a')).bytes, MANIFEST_TYPE);
    const held = await inProcessLocker(join(dir, 'index.json.lock'), { timeoutMs: 1_000 });
    const controller = new AbortController();
    const pending = s.tag(desc, 't', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop now')), 50);
    await expect(pending).rejects.toThrow('stop now');
    await held.release();
    expect(await toArray(s.listTags())).toEqual([]);
    await s.tag(desc, 'u');
    expect(await toArray(s.listTags())).toEqual(['u']);
  });
});
