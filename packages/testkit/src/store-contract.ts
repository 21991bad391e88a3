/**
 * NOTE (size): one suite, one file: every edge behaviour of the store contract decided in one place.
 *
 * The store contract: the same tests against every `OciStore` (in the style of unstorage's
 * `testDriver`). The registry client, the image layout, core's memory and Redis stores all run
 * it; `skipIf` is used only for the optional capabilities a store declares it lacks.
 *
 * The edge behaviours, decided once:
 * - tagging a manifest the store does not have: `ManifestUnknownError`;
 * - deleting a manifest that is not there: not an error; a deleted manifest's tags are gone;
 * - a reference with a `:` is a digest, of any algorithm (an unknown `sha512:` digest is a miss);
 *   a malformed one or an unsupported algorithm is `DigestInvalidError`, a bad tag `TagInvalidError`;
 * - `listTags`: every tag once, in lexical (code-unit) order, as distribution returns them;
 * - a declared `limits.maxEntrySize` refuses a larger blob with `StoreLimitError` before storing it;
 * - reads are verified: a corrupt blob fails with `DigestMismatchError` and its final piece is never
 *   handed on; a missing blob is `BlobUnknownError` from `fetchBlob` itself;
 * - a ranged read (`FetchBlobOptions.range`) hands out exactly those bytes; an invalid range
 *   (negative or fractional offset, length < 1, past the end of the blob) is oci's
 *   `InvalidOptionError` naming `range`, from `fetchBlob` itself and before any read (so also for a
 *   blob the store does not have); a valid range of a missing blob is `BlobUnknownError`;
 * - a manifest whose config/layers/children are missing: `ManifestBlobUnknownError` with exactly
 *   those `missingDigests`; a missing `subject` is accepted; bytes that are not a JSON object:
 *   `ManifestInvalidError`;
 * - pushing the same blob, manifest or tag again is harmless;
 * - a fired signal rejects every call with its reason.
 *
 * NOTE: over 400 lines on purpose: the contract is one list of cases, read top to bottom as the
 * specification of a store; splitting it would scatter the decisions above.
 */
import { createHash } from 'node:crypto';
import type { Descriptor, OciStore } from '@task-cache/oci';
import { afterEach, describe, expect, it } from 'vitest';
import { seededBytes } from './seeded.js';

/** One fresh store (an empty repository, directory, key prefix…) for one test. */
export interface StoreFixture<S extends OciStore = OciStore> {
  store: S;
  /**
   * Replaces the stored bytes of a blob or manifest behind the store's back (no verification),
   * for the verification cases. Same-size replacements must be served as they are.
   */
  tamper(digest: string, bytes: Uint8Array): Promise<void>;
  /** Releases what the fixture opened (the store's `close()` is called by the suite). */
  close?(): Promise<void>;
}

/** The optional capabilities a store declares (checked against the store itself). */
export interface StoreCapabilities {
  /** `store.listTags` exists. */
  listTags: boolean;
  /** `store.deleteManifest` exists. */
  deleteManifest: boolean;
  /** `store.limits.maxEntrySize` is set. */
  maxEntrySize: boolean;
}

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const CONFIG = 'application/vnd.oci.empty.v1+json';
const LAYER = 'application/octet-stream';
const enc = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const digestOf = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const descriptor = (bytes: Uint8Array, mediaType = LAYER): Descriptor => ({
  mediaType,
  digest: digestOf(bytes),
  size: bytes.byteLength,
});
const SHA512_UNKNOWN = `sha512:${'ab'.repeat(64)}`;

async function collect(source: AsyncIterable<Uint8Array>, into: Uint8Array[] = []): Promise<Uint8Array> {
  for await (const piece of source) into.push(piece);
  return new Uint8Array(Buffer.concat(into));
}

async function tags(store: OciStore, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  for await (const t of store.listTags!(signal ? { signal } : undefined)) out.push(t);
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, got a result');
}

/** Runs the store contract against `factory`'s stores. */
export function storeContract<S extends OciStore>(
  name: string,
  factory: () => Promise<StoreFixture<S>>,
  capabilities: StoreCapabilities,
): void {
  describe(`store contract: ${name}`, () => {
    const open: StoreFixture<S>[] = [];
    let seed = 0;
    afterEach(async () => {
      for (const fixture of open.splice(0)) {
        await fixture.store.close?.();
        await fixture.close?.();
      }
    });
    const fresh = async () => {
      const fixture = await factory();
      open.push(fixture);
      return fixture;
    };
    const blob = (size = 1000) => {
      const bytes = seededBytes(++seed + (process.pid % 1000) * 100_000, size);
      return { bytes, descriptor: descriptor(bytes) };
    };
    /** Pushes a config and layers, returns the manifest bytes referencing them. */
    const artifact = async (store: OciStore, layers = 2, extra: Record<string, unknown> = {}) => {
      const config = enc({ seed: ++seed });
      const configDesc = descriptor(config, CONFIG);
      await store.pushBlob(configDesc, config);
      const layerDescs: Descriptor[] = [];
      for (let i = 0; i < layers; i++) {
        const b = blob(100 + i);
        await store.pushBlob(b.descriptor, b.bytes);
        layerDescs.push(b.descriptor);
      }
      const bytes = enc({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: configDesc,
        layers: layerDescs,
        ...extra,
      });
      return { bytes, config: configDesc, layers: layerDescs };
    };

    it('declares exactly the optional capabilities it has', async () => {
      const { store } = await fresh();
      expect(typeof store.location).toBe('string');
      expect(typeof store.listTags === 'function').toBe(capabilities.listTags);
      expect(typeof store.deleteManifest === 'function').toBe(capabilities.deleteManifest);
      expect(store.limits?.maxEntrySize !== undefined).toBe(capabilities.maxEntrySize);
    });

    describe('blobs', () => {
      it('round-trips a blob; pushing it again, or as a stream, is harmless', async () => {
        const { store } = await fresh();
        const { bytes, descriptor: d } = blob(5000);
        expect(await store.blobExists(d)).toBe(false);
        await store.pushBlob(d, bytes);
        await store.pushBlob(d, bytes);
        await store.pushBlob(d, async function* () {
          yield bytes.subarray(0, 10);
          yield bytes.subarray(10);
        });
        expect(await store.blobExists(d)).toBe(true);
        expect(await store.blobExists({ digest: d.digest })).toBe(true);
        expect(Buffer.from(await collect(await store.fetchBlob(d))).equals(Buffer.from(bytes))).toBe(true);
      });

      it('a missing blob: blobExists is false and fetchBlob itself rejects with BlobUnknownError', async () => {
        const { store } = await fresh();
        const { descriptor: d } = blob();
        expect(await store.blobExists(d)).toBe(false);
        const error = await rejection(store.fetchBlob(d));
        expect(error).toMatchObject({
          name: 'BlobUnknownError',
          code: 'OCI_ERR_BLOB_UNKNOWN',
          registryCode: 'BLOB_UNKNOWN',
        });
      });

      it('refuses bytes that do not match the descriptor and keeps nothing of them', async () => {
        const { store } = await fresh();
        const { descriptor: d } = blob(300);
        const other = blob(300).bytes;
        expect(await rejection(store.pushBlob(d, other))).toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
        expect(await store.blobExists(d)).toBe(false);
      });

      it('refuses malformed digests with DigestInvalidError', async () => {
        const { store } = await fresh();
        const bad = { mediaType: LAYER, digest: 'sha256:not-hex', size: 1 };
        for (const call of [
          () => store.fetchBlob(bad),
          () => store.blobExists(bad),
          () => store.pushBlob(bad, new Uint8Array([1])),
        ]) {
          expect(await rejection(call())).toMatchObject({ code: 'OCI_ERR_DIGEST_INVALID' });
        }
      });

      it('verifies reads: a corrupt blob fails with DigestMismatchError and its last piece is never handed on', async () => {
        const fixture = await fresh();
        const { bytes, descriptor: d } = blob(3 * 1024 * 1024 + 17);
        await fixture.store.pushBlob(d, bytes);
        const corrupt = Uint8Array.from(bytes);
        corrupt[corrupt.length - 1] = corrupt[corrupt.length - 1]! ^ 0xff;
        await fixture.tamper(d.digest, corrupt);
        const handed: Uint8Array[] = [];
        const error = await rejection(fixture.store.fetchBlob(d).then((source) => collect(source, handed)));
        expect(error).toMatchObject({ name: 'DigestMismatchError', code: 'OCI_ERR_DIGEST_MISMATCH' });
        const total = handed.reduce((n, p) => n + p.byteLength, 0);
        expect(total).toBeLessThan(d.size);
      });
    });

    describe('ranged reads (FetchBlobOptions.range)', () => {
      // Over 1 MiB, so that a streaming store hands a range out in several pieces.
      const SIZE = 1024 * 1024 + 4099;

      it('hands out exactly the range: the first byte, a middle slice, the last byte, the whole blob', async () => {
        const { store } = await fresh();
        const { bytes, descriptor: d } = blob(SIZE);
        await store.pushBlob(d, bytes);
        const ranges = [
          { offset: 0, length: 1 },
          { offset: 70_001, length: 600_000 },
          { offset: SIZE - 1, length: 1 },
          { offset: 0, length: SIZE },
        ];
        for (const range of ranges) {
          const got = await collect(await store.fetchBlob(d, { range }));
          const want = bytes.subarray(range.offset, range.offset + range.length);
          expect(got.byteLength, JSON.stringify(range)).toBe(range.length);
          expect(Buffer.from(got).equals(Buffer.from(want)), JSON.stringify(range)).toBe(true);
        }
        // The blob itself is still read whole and verified after ranged reads.
        expect(Buffer.from(await collect(await store.fetchBlob(d))).equals(Buffer.from(bytes))).toBe(true);
      });

      it('refuses an invalid range with InvalidOptionError naming range, before any read (a missing blob too)', async () => {
        const { store } = await fresh();
        const stored = blob(1000);
        await store.pushBlob(stored.descriptor, stored.bytes);
        const missing = blob(1000).descriptor;
        const invalid = [
          { offset: -1, length: 1 },
          { offset: 1.5, length: 1 },
          { offset: Number.NaN, length: 1 },
          { offset: 0, length: 0 },
          { offset: 0, length: -3 },
          { offset: 0, length: 2.5 },
          { offset: 1000, length: 1 },
          { offset: 990, length: 11 },
          { offset: 0, length: 1001 },
        ];
        for (const d of [stored.descriptor, missing]) {
          for (const range of invalid) {
            const label = `${d === missing ? 'missing' : 'stored'} ${JSON.stringify(range)}`;
            const error = await rejection(store.fetchBlob(d, { range }));
            expect(error, label).toMatchObject({
              name: 'InvalidOptionError',
              code: 'OCI_ERR_INVALID_OPTION',
            });
            expect((error as Error).message, label).toMatch(/\brange\b/);
          }
        }
      });

      it('a valid range of a missing blob: fetchBlob itself rejects with BlobUnknownError', async () => {
        const { store } = await fresh();
        const { descriptor: d } = blob(1000);
        const error = await rejection(store.fetchBlob(d, { range: { offset: 10, length: 20 } }));
        expect(error).toMatchObject({
          name: 'BlobUnknownError',
          code: 'OCI_ERR_BLOB_UNKNOWN',
          registryCode: 'BLOB_UNKNOWN',
        });
      });
    });

    describe('manifests and tags', () => {
      it('round-trips a manifest byte-exact by digest and by tag', async () => {
        const { store } = await fresh();
        const { bytes } = await artifact(store);
        const pushed = await store.pushManifest(bytes, MANIFEST, { tag: 'v1' });
        expect(pushed).toMatchObject({
          mediaType: MANIFEST,
          digest: digestOf(bytes),
          size: bytes.byteLength,
        });
        for (const reference of [pushed.digest, 'v1']) {
          const got = await store.fetchManifest(reference);
          expect(got?.descriptor).toMatchObject({
            mediaType: MANIFEST,
            digest: pushed.digest,
            size: bytes.byteLength,
          });
          expect(Buffer.from(got!.bytes).equals(Buffer.from(bytes))).toBe(true);
        }
      });

      it('misses are undefined: an unknown tag, an unknown sha256 or sha512 digest', async () => {
        const { store } = await fresh();
        expect(await store.fetchManifest('nothing-here')).toBeUndefined();
        expect(await store.fetchManifest(`sha256:${'0'.repeat(64)}`)).toBeUndefined();
        expect(await store.fetchManifest(SHA512_UNKNOWN)).toBeUndefined();
      });

      it('a reference with ":" is a digest: malformed or unsupported ones are DigestInvalidError, bad tags TagInvalidError', async () => {
        const { store } = await fresh();
        for (const reference of [`md5:${'a'.repeat(32)}`, 'sha256:short', `sha512:${'A'.repeat(128)}`]) {
          expect(await rejection(store.fetchManifest(reference))).toMatchObject({
            code: 'OCI_ERR_DIGEST_INVALID',
          });
        }
        const { bytes } = await artifact(store, 0);
        const pushed = await store.pushManifest(bytes, MANIFEST);
        for (const call of [
          () => store.fetchManifest('.hidden'),
          () => store.pushManifest(bytes, MANIFEST, { tag: 'a/b' }),
          () => store.tag(pushed, '-dash'),
          () => store.tag(pushed, 'x'.repeat(129)),
        ]) {
          expect(await rejection(call())).toMatchObject({ code: 'OCI_ERR_TAG_INVALID' });
        }
      });

      it('refuses a manifest whose config or layers are missing, naming exactly those', async () => {
        const { store } = await fresh();
        const config = enc({ missing: ++seed });
        const present = blob(200);
        await store.pushBlob(present.descriptor, present.bytes);
        const absent = blob(201);
        const bytes = enc({
          schemaVersion: 2,
          mediaType: MANIFEST,
          config: descriptor(config, CONFIG),
          layers: [present.descriptor, absent.descriptor],
        });
        const error = (await rejection(store.pushManifest(bytes, MANIFEST, { tag: 'never' }))) as {
          missingDigests?: string[];
        };
        expect(error).toMatchObject({
          name: 'ManifestBlobUnknownError',
          code: 'OCI_ERR_MANIFEST_BLOB_UNKNOWN',
        });
        expect(new Set(error.missingDigests)).toEqual(new Set([digestOf(config), absent.descriptor.digest]));
        expect(await store.fetchManifest('never')).toBeUndefined();
      });

      it('refuses an index whose child manifests are missing; accepts it once they are there', async () => {
        const { store } = await fresh();
        const child = await artifact(store, 1);
        const childDesc = { ...descriptor(child.bytes, MANIFEST) };
        const index = enc({ schemaVersion: 2, mediaType: INDEX, manifests: [childDesc] });
        const error = (await rejection(store.pushManifest(index, INDEX))) as { missingDigests?: string[] };
        expect(error).toMatchObject({ code: 'OCI_ERR_MANIFEST_BLOB_UNKNOWN' });
        expect(error.missingDigests).toEqual([childDesc.digest]);
        await store.pushManifest(child.bytes, MANIFEST);
        const pushed = await store.pushManifest(index, INDEX, { tag: 'idx' });
        expect((await store.fetchManifest('idx'))?.descriptor).toMatchObject({
          mediaType: INDEX,
          digest: pushed.digest,
        });
      });

      it('accepts a manifest whose subject is missing (OCI 1.1 referrers)', async () => {
        const { store } = await fresh();
        const subject = { mediaType: MANIFEST, digest: `sha256:${'5'.repeat(64)}`, size: 123 };
        const { bytes } = await artifact(store, 1, { subject });
        const pushed = await store.pushManifest(bytes, MANIFEST, { tag: 'referrer' });
        expect((await store.fetchManifest('referrer'))?.descriptor.digest).toBe(pushed.digest);
      });

      it('refuses manifest bytes that are not a JSON object with ManifestInvalidError', async () => {
        const { store } = await fresh();
        const error = await rejection(store.pushManifest(new TextEncoder().encode('not json'), MANIFEST));
        expect(error).toMatchObject({ code: 'OCI_ERR_MANIFEST_INVALID' });
      });

      it('pushing the same manifest and tag again is harmless; a tag moves to the last manifest', async () => {
        const { store } = await fresh();
        const a = await artifact(store);
        const first = await store.pushManifest(a.bytes, MANIFEST, { tag: 'latest' });
        const again = await store.pushManifest(a.bytes, MANIFEST, { tag: 'latest' });
        expect(again.digest).toBe(first.digest);
        await store.tag(first, 'stable');
        await store.tag(first, 'stable');
        const b = await artifact(store);
        const second = await store.pushManifest(b.bytes, MANIFEST);
        await store.tag(second, 'latest');
        expect((await store.fetchManifest('latest'))?.descriptor.digest).toBe(second.digest);
        expect((await store.fetchManifest('stable'))?.descriptor.digest).toBe(first.digest);
      });

      it('tagging a manifest the store does not have is ManifestUnknownError', async () => {
        const { store } = await fresh();
        const unknown = descriptor(enc({ schemaVersion: 2, never: ++seed }), MANIFEST);
        const error = await rejection(store.tag(unknown, 'orphan'));
        expect(error).toMatchObject({
          name: 'ManifestUnknownError',
          code: 'OCI_ERR_MANIFEST_UNKNOWN',
          registryCode: 'MANIFEST_UNKNOWN',
        });
        expect(await store.fetchManifest('orphan')).toBeUndefined();
      });

      it.skipIf(!capabilities.listTags)(
        'listTags: every tag once, in lexical order; none for an empty store',
        async () => {
          const { store } = await fresh();
          expect(await tags(store)).toEqual([]);
          const { bytes } = await artifact(store);
          const pushed = await store.pushManifest(bytes, MANIFEST, { tag: 'b' });
          for (const t of ['a-1', 'C', '_x', 'a', 'b', '0']) await store.tag(pushed, t);
          expect(await tags(store)).toEqual(['0', 'C', '_x', 'a', 'a-1', 'b']);
        },
      );

      it.skipIf(!capabilities.deleteManifest)(
        'deleteManifest removes the manifest from its tags; deleting what is not there is not an error',
        async () => {
          const { store } = await fresh();
          const a = await artifact(store);
          const gone = await store.pushManifest(a.bytes, MANIFEST, { tag: 'one' });
          await store.tag(gone, 'two');
          const b = await artifact(store);
          const kept = await store.pushManifest(b.bytes, MANIFEST, { tag: 'keep' });
          await store.deleteManifest!(gone.digest);
          expect(await store.fetchManifest('one')).toBeUndefined();
          expect(await store.fetchManifest('two')).toBeUndefined();
          expect((await store.fetchManifest('keep'))?.descriptor.digest).toBe(kept.digest);
          if (capabilities.listTags) expect(await tags(store)).toEqual(['keep']);
          await store.deleteManifest!(gone.digest);
          await store.deleteManifest!(`sha256:${'7'.repeat(64)}`);
        },
      );
    });

    it.skipIf(!capabilities.maxEntrySize)(
      'a declared limits.maxEntrySize refuses a larger blob with StoreLimitError before storing it',
      async () => {
        const { store } = await fresh();
        const limit = store.limits!.maxEntrySize!;
        expect(Number.isSafeInteger(limit) && limit > 0).toBe(true);
        const over = blob(limit + 1);
        const error = await rejection(store.pushBlob(over.descriptor, over.bytes));
        expect(error).toMatchObject({ name: 'StoreLimitError', code: 'OCI_ERR_STORE_LIMIT', limit });
        // A stream whose descriptor lies about its size is refused too, as soon as it is too long.
        const streamed = await rejection(
          store.pushBlob({ ...over.descriptor, size: limit }, async function* () {
            yield over.bytes;
          }),
        );
        expect(streamed).toBeInstanceOf(Error);
        expect(await store.blobExists(over.descriptor)).toBe(false);
        const fits = blob(limit);
        await store.pushBlob(fits.descriptor, fits.bytes);
        expect(await store.blobExists(fits.descriptor)).toBe(true);
      },
    );

    describe('abort', () => {
      it('a fired signal rejects every call with its reason', async () => {
        const { store } = await fresh();
        const { bytes, descriptor: d } = blob();
        await store.pushBlob(d, bytes);
        const other = blob();
        const a = await artifact(store, 1);
        const pushed = await store.pushManifest(a.bytes, MANIFEST, { tag: 't' });
        const controller = new AbortController();
        const reason = new Error('stop now');
        controller.abort(reason);
        const signal = controller.signal;
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['fetchBlob', () => store.fetchBlob(d, { signal }).then((s) => collect(s))],
          [
            'fetchBlob (range)',
            () => store.fetchBlob(d, { signal, range: { offset: 1, length: 10 } }).then((s) => collect(s)),
          ],
          ['blobExists', () => store.blobExists(d, { signal })],
          ['pushBlob', () => store.pushBlob(other.descriptor, other.bytes, { signal })],
          ['fetchManifest', () => store.fetchManifest('t', { signal })],
          ['pushManifest', () => store.pushManifest(a.bytes, MANIFEST, { signal })],
          ['tag', () => store.tag(pushed, 'u', { signal })],
        ];
        if (capabilities.listTags) calls.push(['listTags', () => tags(store, signal)]);
        if (capabilities.deleteManifest)
          calls.push(['deleteManifest', () => store.deleteManifest!(pushed.digest, { signal })]);
        for (const [label, call] of calls) {
          expect(await rejection(call()), label).toBe(reason);
        }
        // Nothing happened: the tag did not move, the manifest is still there, no blob was stored.
        expect((await store.fetchManifest('t'))?.descriptor.digest).toBe(pushed.digest);
        expect(await store.fetchManifest('u')).toBeUndefined();
        expect(await store.blobExists(other.descriptor)).toBe(false);
      });

      it('a signal fired after fetchBlob resolved stops the read with its reason', async () => {
        const { store } = await fresh();
        const { bytes, descriptor: d } = blob(2 * 1024 * 1024);
        await store.pushBlob(d, bytes);
        const controller = new AbortController();
        const reason = new Error('stop reading');
        const source = await store.fetchBlob(d, { signal: controller.signal });
        controller.abort(reason);
        expect(await rejection(collect(source))).toBe(reason);
      });
    });
  });
}
