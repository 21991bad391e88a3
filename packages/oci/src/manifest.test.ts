import { describe, expect, it } from 'vitest';
import { DigestInvalidError, ManifestInvalidError, TagInvalidError } from './errors.js';
import {
  MEDIA_TYPE_EMPTY_JSON,
  MEDIA_TYPE_IMAGE_INDEX,
  MEDIA_TYPE_IMAGE_MANIFEST,
  manifestReferences,
  parseManifestReference,
} from './manifest.js';

const d = (c: string, mediaType = 'application/octet-stream', size = 1) => ({
  mediaType,
  digest: `sha256:${c.repeat(64)}`,
  size,
});
const enc = (doc: unknown) => new TextEncoder().encode(JSON.stringify(doc));

// The one answer to "which digests does a manifest reference" (memory, layout and Redis stores
// used to answer three ways: only config/layers/manifests, with or without subject, and the Redis
// store tagged index children with a prefix of its own).
describe('manifestReferences', () => {
  it.each([
    [
      'an image manifest: config then layers in order',
      {
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_IMAGE_MANIFEST,
        config: d('a', MEDIA_TYPE_EMPTY_JSON, 2),
        layers: [d('b'), d('c')],
      },
      [
        ['config', 'a'],
        ['layer', 'b'],
        ['layer', 'c'],
      ],
    ],
    [
      'an index: its child manifests',
      {
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_IMAGE_INDEX,
        manifests: [d('d', MEDIA_TYPE_IMAGE_MANIFEST), d('e', MEDIA_TYPE_IMAGE_MANIFEST)],
      },
      [
        ['manifest', 'd'],
        ['manifest', 'e'],
      ],
    ],
    [
      'a referrer: config, layers, then the subject',
      { schemaVersion: 2, config: d('a'), layers: [], subject: d('f', MEDIA_TYPE_IMAGE_MANIFEST) },
      [
        ['config', 'a'],
        ['subject', 'f'],
      ],
    ],
    ['no references at all', { schemaVersion: 2 }, []],
    [
      'a repeated blob is listed each time',
      { schemaVersion: 2, config: d('a'), layers: [d('a'), d('a')] },
      [
        ['config', 'a'],
        ['layer', 'a'],
        ['layer', 'a'],
      ],
    ],
  ])('%s', (_label, doc, expected) => {
    for (const input of [enc(doc), doc as Record<string, unknown>]) {
      const refs = manifestReferences(input);
      expect(refs.map((r) => [r.kind, r.digest.slice(7, 8)])).toEqual(expected);
      for (const r of refs)
        expect(r).toMatchObject({ mediaType: expect.any(String), size: expect.any(Number) });
    }
  });

  it('keeps sha512 digests', () => {
    const digest = `sha512:${'a'.repeat(128)}`;
    expect(manifestReferences({ layers: [{ mediaType: 'x', digest, size: 3 }] })).toEqual([
      { kind: 'layer', mediaType: 'x', digest, size: 3 },
    ]);
  });

  it.each([
    ['not JSON', new TextEncoder().encode('{nope'), /not valid JSON/],
    ['a JSON array', enc([1]), /not a JSON object/],
    ['layers not an array', enc({ layers: {} }), /"layers" is not an array/],
    ['a layer that is no descriptor', enc({ layers: [7] }), /layers\[0\] is not a descriptor/],
    [
      'an invalid digest',
      enc({ config: { mediaType: 'x', digest: 'sha256:zz', size: 1 } }),
      /config has an invalid digest/,
    ],
    [
      'an md5 digest',
      enc({ manifests: [{ mediaType: 'x', digest: `md5:${'a'.repeat(32)}`, size: 1 }] }),
      /manifests\[0\] has an invalid digest/,
    ],
    ['a negative size', enc({ layers: [{ ...d('a'), size: -1 }] }), /invalid size/],
    ['no media type', enc({ subject: { digest: d('a').digest, size: 1 } }), /subject has no mediaType/],
  ])('refuses %s with ManifestInvalidError', (_label, bytes, message) => {
    expect(() => manifestReferences(bytes)).toThrow(ManifestInvalidError);
    expect(() => manifestReferences(bytes)).toThrow(message);
  });
});

describe('manifestReferences({ lenient: true })', () => {
  it('keeps every descriptor naming content and skips the rest, for garbage collection', () => {
    const doc = {
      config: { digest: d('a').digest, size: 2 },
      layers: [7, d('b'), { ...d('c'), size: -1 }, { mediaType: 'x', digest: 'nope', size: 1 }],
      manifests: 'not an array',
    };
    expect(manifestReferences(enc(doc), { lenient: true })).toEqual([
      { kind: 'config', mediaType: '', digest: d('a').digest, size: 2 },
      { kind: 'layer', ...d('b') },
    ]);
    expect(() => manifestReferences(new TextEncoder().encode('{nope'), { lenient: true })).toThrow(
      ManifestInvalidError,
    );
  });
});

describe('parseManifestReference', () => {
  it.each([
    ['latest', { kind: 'tag', tag: 'latest' }],
    ['build-abc_1.2', { kind: 'tag', tag: 'build-abc_1.2' }],
    [d('a').digest, { kind: 'digest', digest: d('a').digest }],
    [`sha512:${'b'.repeat(128)}`, { kind: 'digest', digest: `sha512:${'b'.repeat(128)}` }],
  ])('%s', (reference, expected) => {
    expect(parseManifestReference(reference)).toEqual(expected);
  });

  it.each([
    [`md5:${'a'.repeat(32)}`, DigestInvalidError],
    ['sha256:short', DigestInvalidError],
    ['sha512:UPPER', DigestInvalidError],
    ['.hidden', TagInvalidError],
    ['a/b', TagInvalidError],
    ['', TagInvalidError],
  ])('refuses %j', (reference, type) => {
    expect(() => parseManifestReference(reference)).toThrow(type);
  });
});
