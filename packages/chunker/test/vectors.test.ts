import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chunkBuffer, chunkStream } from '../src/index.js';
import { collect, fixture, fixtureVectors, piecesOf, referenceChunks } from './helpers.js';

const image = new Uint8Array(readFileSync(fixture('SekienAkashita.jpg')));
const vectors = fixtureVectors();
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const params = { avgSize: 16384, minSize: 4096, maxSize: 65535, normalization: 2 };

describe('REAPI fastcdc2020_test_vectors.txt', () => {
  it('fixtures are the published ones', () => {
    expect(sha256(image)).toBe('d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed');
    expect([...vectors.keys()]).toEqual([0n, 666n]);
    expect(vectors.get(0n)).toHaveLength(6);
    expect(vectors.get(666n)).toHaveLength(6);
  });

  for (const [seed, expected] of vectors) {
    describe(`seed ${seed}`, () => {
      it('chunkBuffer reproduces every offset, length, sha256 and fingerprint', () => {
        const chunks = chunkBuffer(image, { ...params, seed });
        expect(
          chunks.map((c) => ({
            offset: c.offset,
            length: c.length,
            sha256: sha256(image.subarray(c.offset, c.offset + c.length)),
            fingerprint: c.fingerprint,
          })),
        ).toEqual(expected);
      });

      for (const sizes of [[1], [2], [3], [7, 1, 4096], [65535], [image.length]]) {
        it(`chunkStream with pieces of ${sizes.join(',')} bytes reproduces them, with data`, async () => {
          const chunks = await collect(chunkStream(piecesOf(image, sizes), { ...params, seed }));
          expect(
            chunks.map((c) => ({
              offset: c.offset,
              length: c.length,
              sha256: sha256(c.data!),
              fingerprint: c.fingerprint,
            })),
          ).toEqual(expected);
        });
      }

      it('the seed given as a number gives the same chunks', () => {
        expect(chunkBuffer(image, { ...params, seed: Number(seed) })).toEqual(
          chunkBuffer(image, { ...params, seed }),
        );
      });

      it('the naive test reference reproduces them too (it is a valid oracle)', () => {
        const ref = referenceChunks(image, { ...params, seed });
        expect(ref.map((c) => [c.offset, c.length, c.fingerprint])).toEqual(
          expected.map((v) => [v.offset, v.length, v.fingerprint]),
        );
      });
    });
  }
});
