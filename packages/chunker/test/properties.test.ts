import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Chunk, type ChunkOptions, chunkBuffer, chunkStream } from '../src/index.js';
import { collect, piecesOf, randomBytes, referenceChunks } from './helpers.js';

/** Random but valid FastCDC 2020 parameters, small so that inputs hold many chunks. */
const paramsArb = fc
  .record({
    avgBits: fc.integer({ min: 7, max: 13 }),
    normalization: fc.integer({ min: 0, max: 3 }),
    minMode: fc.constantFrom('default', 'odd', 'custom'),
    maxMode: fc.constantFrom('default', 'odd', 'custom'),
    minFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    maxFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    seed: fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: (1n << 64n) - 1n })),
  })
  .filter((r) => r.avgBits - r.normalization >= 5 && r.avgBits + r.normalization <= 25)
  .map((r) => {
    const avgSize = 2 ** r.avgBits;
    const minSize =
      r.minMode === 'default'
        ? Math.max(64, avgSize / 4)
        : r.minMode === 'odd'
          ? Math.max(65, avgSize / 4 + 1)
          : 64 + Math.floor(r.minFrac * (avgSize - 64));
    const maxSize =
      r.maxMode === 'default'
        ? avgSize * 4
        : r.maxMode === 'odd'
          ? avgSize * 4 - 1
          : Math.max(minSize + 1, avgSize) + Math.floor(r.maxFrac * avgSize * 6);
    return { avgSize, minSize, maxSize, normalization: r.normalization, seed: r.seed };
  });

/** Random data, sometimes with long low-entropy runs (zeros, a repeated pattern) to force max cuts. */
const dataArb = fc
  .record({
    length: fc.integer({ min: 0, max: 60_000 }),
    seed: fc.integer({ min: 1, max: 2 ** 31 }),
    kind: fc.constantFrom('random', 'zeros', 'mixed'),
  })
  .map(({ length, seed, kind }) => {
    const data = randomBytes(length, seed);
    if (kind === 'zeros') data.fill(0);
    if (kind === 'mixed') {
      for (let i = Math.floor(length / 3); i < Math.floor((2 * length) / 3); i++) data[i] = i % 3;
    }
    return data;
  });

const piecesArb = fc.array(fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 70_000 })), {
  minLength: 1,
  maxLength: 12,
});

const strip = (chunks: Chunk[]) =>
  chunks.map((c) => ({ offset: c.offset, length: c.length, fp: c.fingerprint }));

describe('properties on generated data', () => {
  it('chunkBuffer equals the naive reference implementation', () => {
    fc.assert(
      fc.property(dataArb, paramsArb, (data, params) => {
        const ref = referenceChunks(data, params);
        expect(strip(chunkBuffer(data, params))).toEqual(
          ref.map((c) => ({ offset: c.offset, length: c.length, fp: c.fingerprint })),
        );
      }),
      { numRuns: 60 },
    );
  });

  it('chunkStream gives the chunks of chunkBuffer whatever the piece sizes, with the right data', async () => {
    await fc.assert(
      fc.asyncProperty(dataArb, paramsArb, piecesArb, async (data, params, sizes) => {
        const expected = chunkBuffer(data, params);
        const streamed = await collect(chunkStream(piecesOf(data, sizes), params));
        expect(strip(streamed)).toEqual(strip(expected));
        for (const c of streamed) {
          expect(Buffer.from(c.data!).equals(Buffer.from(data.subarray(c.offset, c.offset + c.length)))).toBe(
            true,
          );
        }
      }),
      { numRuns: 150 },
    );
  });

  it('1-byte pieces give the same chunks as one buffer', async () => {
    const data = randomBytes(200_000, 7);
    for (const params of [
      { avgSize: 4096 },
      { avgSize: 8192, minSize: 2049, maxSize: 30_001, normalization: 1, seed: 0xdeadbeefn },
    ] satisfies ChunkOptions[]) {
      const expected = chunkBuffer(data, params);
      expect(expected.length).toBeGreaterThan(10);
      expect(strip(await collect(chunkStream(piecesOf(data, [1]), params)))).toEqual(strip(expected));
    }
  });

  it('chunks cover the input exactly once, in order, within [min, max] except the last', () => {
    fc.assert(
      fc.property(dataArb, paramsArb, (data, params) => {
        const chunks = chunkBuffer(data, params);
        let at = 0;
        chunks.forEach((c, i) => {
          expect(c.offset).toBe(at);
          expect(c.length).toBeGreaterThan(0);
          expect(c.length).toBeLessThanOrEqual(params.maxSize);
          // NOTE: a cut at the first hashed pair is min rounded down to even (min - 1 for odd min).
          if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(params.minSize & ~1);
          at += c.length;
        });
        expect(at).toBe(data.length);
      }),
      { numRuns: 200 },
    );
  });

  it('an empty input has no chunks, a tiny one is one chunk with fingerprint 0', async () => {
    expect(chunkBuffer(new Uint8Array(0), { avgSize: 256 })).toEqual([]);
    expect(await collect(chunkStream(piecesOf(new Uint8Array(0), [1]), { avgSize: 256 }))).toEqual([]);
    expect(strip(chunkBuffer(randomBytes(64, 3), { avgSize: 256 }))).toEqual([
      { offset: 0, length: 64, fp: 0n },
    ]);
  });

  it('all-zero input is cut at maxSize (no cut point) and gives stable fingerprints', () => {
    const zeros = new Uint8Array(5 * 4096 + 100);
    const chunks = chunkBuffer(zeros, { avgSize: 1024 });
    // with these tables zeros never hit the masks: every chunk is max long
    expect(chunks.map((c) => c.length)).toEqual([4096, 4096, 4096, 4096, 4096, 100]);
    expect(new Set(chunks.slice(0, 5).map((c) => c.fingerprint)).size).toBe(1);
  });
});

describe('locality on 64 MiB', () => {
  const size = 64 * 1024 * 1024;
  let base: Uint8Array;
  let baseChunks: Chunk[];
  beforeAll(() => {
    base = randomBytes(size, 12345);
    baseChunks = chunkBuffer(base);
  });

  function check(edited: Uint8Array, editAt: number, delta: number) {
    const chunks = chunkBuffer(edited);
    expect(baseChunks.length).toBeGreaterThan(30);
    // Chunks that end before the edit are untouched.
    const before = baseChunks.filter((c) => c.offset + c.length <= editAt);
    expect(chunks.slice(0, before.length)).toEqual(before);
    // Every other base chunk reappears with the same bytes (shifted by delta after the edit).
    const shifted = new Map(chunks.map((c) => [c.offset < editAt ? c.offset : c.offset - delta, c]));
    const lost = baseChunks.filter((c) => {
      const moved = shifted.get(c.offset);
      if (moved === undefined || moved.length !== c.length) return true;
      return !Buffer.from(edited.subarray(moved.offset, moved.offset + moved.length)).equals(
        Buffer.from(base.subarray(c.offset, c.offset + c.length)),
      );
    });
    // Only chunks around the edit change (the one holding it, and possibly the next one).
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(lost.length).toBeLessThanOrEqual(2);
    const holding = baseChunks.findIndex((c) => c.offset <= editAt && editAt < c.offset + c.length);
    expect(lost[0]).toBe(baseChunks[holding]);
    if (lost.length === 2) expect(lost[1]).toBe(baseChunks[holding + 1]);
  }

  it('inserting a few bytes near the start changes only the chunks around the edit', () => {
    const at = 1_000_003;
    const insert = new Uint8Array([1, 2, 3, 4, 5]);
    const edited = new Uint8Array(size + insert.length);
    edited.set(base.subarray(0, at), 0);
    edited.set(insert, at);
    edited.set(base.subarray(at), at + insert.length);
    check(edited, at, insert.length);
  });

  it('deleting a few bytes near the start changes only the chunks around the edit', () => {
    const at = 2_500_001;
    const edited = new Uint8Array(size - 3);
    edited.set(base.subarray(0, at), 0);
    edited.set(base.subarray(at + 3), at);
    check(edited, at, -3);
  });
});
