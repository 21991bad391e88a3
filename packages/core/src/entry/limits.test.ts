/**
 * Issue 16 §2: the entry limits are checked against what the documents declare BEFORE the parts
 * they describe are fetched (a fake reader counts the fetches), and a refusal is typed.
 */
import { sha256Digest } from '@task-cache/oci';
import { describe, expect, it } from 'vitest';
import { EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { CHUNK_MEDIA_TYPE, ENTRY_ARTIFACT_TYPE, ENTRY_CONFIG_MEDIA_TYPE } from './format.js';
import { lookupEntry } from './resolve.js';
import type { EntryReader } from './types.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const digest = (i: number) => sha256Digest(new TextEncoder().encode(`x${i}`));
const bytes = (doc: unknown) => new TextEncoder().encode(JSON.stringify(doc));

/** A reader serving `top` under the tag and `child` for every digest; counts what is fetched. */
function fakeReader(top: unknown, child?: unknown) {
  const fetched: string[] = [];
  const reader: EntryReader = {
    location: 'fake://limits',
    async fetchManifest(reference) {
      fetched.push(reference);
      const b = bytes(reference.startsWith('sha256:') ? child : top);
      return { descriptor: { mediaType: MANIFEST, digest: sha256Digest(b), size: b.byteLength }, bytes: b };
    },
    async fetchBlob(d) {
      fetched.push(`blob ${d.digest}`);
      throw new Error('no blob should be fetched');
    },
  };
  return { reader, fetched };
}

const config = { mediaType: ENTRY_CONFIG_MEDIA_TYPE, digest: digest(0), size: 100 };
const layers = (n: number, size = 10) =>
  Array.from({ length: n }, (_, i) => ({ mediaType: CHUNK_MEDIA_TYPE, digest: digest(i + 1), size }));
const manifest = (n: number, size?: number) => ({
  schemaVersion: 2,
  mediaType: MANIFEST,
  artifactType: ENTRY_ARTIFACT_TYPE,
  config,
  layers: layers(n, size),
});
const index = (children: number, childSize = 1000) => ({
  schemaVersion: 2,
  mediaType: INDEX,
  artifactType: ENTRY_ARTIFACT_TYPE,
  manifests: Array.from({ length: children }, (_, i) => ({
    mediaType: MANIFEST,
    digest: digest(i),
    size: childSize,
  })),
});

async function refusal(reader: EntryReader, options: Parameters<typeof lookupEntry>[1]) {
  return lookupEntry(reader, options).then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('entry limits are checked before fetching', () => {
  it.each([
    ['maxIndexChildren', () => fakeReader(index(1500)), { maxIndexChildren: 256 }, 1],
    ['maxManifestBytes (a child declared larger)', () => fakeReader(index(3, 5e6)), {}, 1],
    ['maxLayers (one manifest)', () => fakeReader(manifest(11)), { maxLayers: 10 }, 1],
    ['maxLayers (over the children)', () => fakeReader(index(3), manifest(6)), { maxLayers: 10 }, 3],
    ['maxConfigBytes', () => fakeReader({ ...manifest(1), config: { ...config, size: 50e6 } }), {}, 1],
  ] as const)('%s', async (_label, make, limits, fetches) => {
    const { reader, fetched } = make();
    const error = await refusal(reader, { tag: 't', limits });
    expect(error).toBeInstanceOf(EntryTooLargeError);
    expect(error).toMatchObject({ code: 'CACHE_ERR_ENTRY_TOO_LARGE' });
    expect(fetched).toHaveLength(fetches);
    expect(fetched.some((f) => f.startsWith('blob '))).toBe(false);
  });

  it('the chunks declared are checked against maxEntrySize before the config is fetched', async () => {
    const { reader, fetched } = fakeReader(manifest(4, 1_000_000));
    const error = await refusal(reader, { tag: 't', maxEntrySize: 1_000_000 });
    expect(error).toBeInstanceOf(EntryTooLargeError);
    expect(fetched).toEqual(['t']);
  });

  it('limits are validated', async () => {
    const { reader } = fakeReader(manifest(1));
    expect(await refusal(reader, { tag: 't', limits: { maxLayers: -1 } })).toBeInstanceOf(InvalidOptionError);
  });
});
