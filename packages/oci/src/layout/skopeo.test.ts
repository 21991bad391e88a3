/**
 * Interop of the image-layout store with skopeo 1.9.3 (Debian) and the real CNCF registry of
 * `@task-cache/testkit`: layouts we write are read and copied by skopeo; layouts skopeo writes
 * are read by us.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { type RegistryFixture, startRegistry } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf } from '../digest.js';
import type { Descriptor } from '../types.js';
import { createLayoutStore, type LayoutStore, REF_NAME_ANNOTATION } from './store.js';

const run = promisify(execFile);
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const INDEX_TYPE = 'application/vnd.oci.image.index.v1+json';

async function skopeo(...args: string[]): Promise<Buffer> {
  const { stdout } = await run('skopeo', args, { encoding: 'buffer', timeout: 60_000, maxBuffer: 64 << 20 });
  return stdout;
}

const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

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

/** A one-file ustar archive (a real image layer). */
function tarOf(name: string, content: Uint8Array): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) =>
    header.write(value, offset, length, 'ascii');
  field(0, 100, name);
  field(100, 8, '0000644\0');
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, `${content.byteLength.toString(8).padStart(11, '0')}\0`);
  field(136, 12, '00000000000\0');
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const padding = Buffer.alloc((512 - (content.byteLength % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

/** Our cache-entry artifact: custom artifactType, config and layer media types. */
async function pushEntryArtifact(store: LayoutStore, tag: string) {
  const config = json({ key: 'abc', files: 1 });
  const chunk = new TextEncoder().encode('zstd chunk bytes (opaque to skopeo)');
  const configDesc = descriptorOf(config, 'application/vnd.task-cache.entry.config.v1+json');
  const layerDesc = descriptorOf(chunk, 'application/vnd.task-cache.chunk.v1+zstd');
  await store.pushBlob(configDesc, config);
  await store.pushBlob(layerDesc, chunk);
  const bytes = json({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    artifactType: 'application/vnd.task-cache.entry.v1',
    config: configDesc,
    layers: [layerDesc],
    annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
  });
  const descriptor = await store.pushManifest(bytes, MANIFEST_TYPE, { tag });
  return {
    bytes,
    descriptor,
    blobs: new Map([
      [configDesc.digest, config],
      [layerDesc.digest, chunk],
    ]),
  };
}

/** A plain single-layer linux image with standard OCI media types. */
async function pushPlainImage(store: LayoutStore, tag: string) {
  const layer = tarOf('hello.txt', new TextEncoder().encode('hello from task-cache\n'));
  const layerDesc = descriptorOf(layer, 'application/vnd.oci.image.layer.v1.tar');
  const config = json({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [layerDesc.digest] },
  });
  const configDesc = descriptorOf(config, 'application/vnd.oci.image.config.v1+json');
  await store.pushBlob(layerDesc, layer);
  await store.pushBlob(configDesc, config);
  const bytes = json({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: configDesc, layers: [layerDesc] });
  const descriptor = await store.pushManifest(bytes, MANIFEST_TYPE, { tag });
  return { bytes, descriptor, config, layer };
}

/** Reads a tag's manifest and every blob it references through our store (all verified). */
async function readImage(store: LayoutStore, tag: string) {
  const fetched = await store.fetchManifest(tag);
  expect(fetched, `tag ${tag} in ${store.location}`).toBeDefined();
  const manifest = JSON.parse(Buffer.from(fetched!.bytes).toString('utf8')) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  const blobs = new Map<string, Buffer>();
  for (const d of [manifest.config, ...manifest.layers])
    blobs.set(d.digest, await collect(await store.fetchBlob(d)));
  return { fetched: fetched!, manifest, blobs };
}

let registry: RegistryFixture;
let work: string;

beforeAll(async () => {
  registry = await startRegistry({ mode: 'anonymous' });
  work = await mkdtemp(join(tmpdir(), 'tc-skopeo-'));
});
afterAll(async () => {
  await registry?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('skopeo 1.9.3 reads layouts written by createLayoutStore', () => {
  it('skopeo inspect --raw returns our manifest and our image index byte-identical', async () => {
    const dir = join(work, 'inspect');
    const store = createLayoutStore(dir);
    const entry = await pushEntryArtifact(store, 'entry');
    const plain = await pushPlainImage(store, 'plain');
    const indexBytes = json({
      schemaVersion: 2,
      mediaType: INDEX_TYPE,
      manifests: [entry.descriptor, plain.descriptor],
    });
    await store.pushManifest(indexBytes, INDEX_TYPE, { tag: 'both' });

    expect((await skopeo('inspect', '--raw', `oci:${dir}:entry`)).equals(Buffer.from(entry.bytes))).toBe(
      true,
    );
    expect((await skopeo('inspect', '--raw', `oci:${dir}:plain`)).equals(Buffer.from(plain.bytes))).toBe(
      true,
    );
    expect((await skopeo('inspect', '--raw', `oci:${dir}:both`)).equals(Buffer.from(indexBytes))).toBe(true);
    // A tag we moved resolves to its new manifest for skopeo too.
    await store.tag(plain.descriptor, 'entry');
    expect((await skopeo('inspect', '--raw', `oci:${dir}:entry`)).equals(Buffer.from(plain.bytes))).toBe(
      true,
    );
  });

  it('skopeo copies our cache-entry artifact (custom media types) to the registry unchanged and back', async () => {
    const dir = join(work, 'artifact');
    const store = createLayoutStore(dir);
    const entry = await pushEntryArtifact(store, 'entry');
    const remote = `docker://${registry.host}/interop/artifact:entry`;

    // NOTE: skopeo 1.9.3 does NOT refuse the custom artifactType / config / layer media
    // types: the copy succeeds and the manifest arrives byte-identical.
    await skopeo('copy', '--dest-tls-verify=false', `oci:${dir}:entry`, remote);
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', remote);
    expect(raw.equals(Buffer.from(entry.bytes))).toBe(true);

    // Back into a new layout written by skopeo, read by us.
    const back = join(work, 'artifact-back');
    await skopeo('copy', '--src-tls-verify=false', remote, `oci:${back}:entry`);
    const ours = createLayoutStore(back);
    const image = await readImage(ours, 'entry');
    expect(Buffer.from(image.fetched.bytes).equals(Buffer.from(entry.bytes))).toBe(true);
    expect(image.fetched.descriptor).toMatchObject({
      digest: entry.descriptor.digest,
      mediaType: MANIFEST_TYPE,
    });
    expect(image.blobs).toEqual(new Map([...entry.blobs].map(([k, v]) => [k, Buffer.from(v)])));
  });

  it('skopeo copies a plain image from our layout to the registry; its copy back is readable by us', async () => {
    const dir = join(work, 'plain');
    const store = createLayoutStore(dir);
    const plain = await pushPlainImage(store, 'v1');
    const remote = `docker://${registry.host}/interop/plain:v1`;
    await skopeo('copy', '--dest-tls-verify=false', `oci:${dir}:v1`, remote);

    const back = join(work, 'plain-back');
    await skopeo('copy', '--src-tls-verify=false', remote, `oci:${back}:v1`);
    const ours = createLayoutStore(back);
    expect(await toArray(ours.listTags())).toEqual(['v1']);
    const image = await readImage(ours, 'v1');
    // skopeo keeps the config byte-exact; it may compress the layer for the registry.
    expect(image.blobs.get(image.manifest.config.digest)?.equals(Buffer.from(plain.config))).toBe(true);
    const layer = image.manifest.layers[0]!;
    const layerBytes = image.blobs.get(layer.digest)!;
    const tar = layer.mediaType.endsWith('+gzip') ? gunzipSync(layerBytes) : layerBytes;
    expect(tar.equals(plain.layer)).toBe(true);
  });

  it('a layout skopeo wrote from ours reads back; our tags added to it are visible to skopeo', async () => {
    const dir = join(work, 'source');
    const store = createLayoutStore(dir);
    const entry = await pushEntryArtifact(store, 'entry');
    const copy = join(work, 'skopeo-layout');
    await skopeo('copy', `oci:${dir}:entry`, `oci:${copy}:entry`);
    const index = JSON.parse(await readFile(join(copy, 'index.json'), 'utf8'));
    expect(index.manifests[0].annotations[REF_NAME_ANNOTATION]).toBe('entry');

    const ours = createLayoutStore(copy);
    const image = await readImage(ours, 'entry');
    expect(Buffer.from(image.fetched.bytes).equals(Buffer.from(entry.bytes))).toBe(true);
    await ours.tag(image.fetched.descriptor, 'also');
    expect(await toArray(ours.listTags())).toEqual(['also', 'entry']);
    expect((await skopeo('inspect', '--raw', `oci:${copy}:also`)).equals(Buffer.from(entry.bytes))).toBe(
      true,
    );
  });
});
