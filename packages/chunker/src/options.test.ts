import { describe, expect, it } from 'vitest';
import {
  ChunkerError,
  ChunkerInputError,
  ChunkerOptionError,
  ChunkerWasmUnavailableError,
  type ChunkOptions,
  chunkBuffer,
  chunkStream,
} from './index.js';
import { resolveOptions } from './options.js';

describe('options', () => {
  it('defaults: avg 1 MiB, min avg/4, max avg*4, normalization 2, seed 0', () => {
    expect(resolveOptions()).toEqual({
      avgSize: 1048576,
      minSize: 262144,
      maxSize: 4194304,
      normalization: 2,
      seed: 0n,
      maskSmall: 0x0000d93767537000n,
      maskLarge: 0x0000d90707537000n,
    });
  });

  it('normalization picks masks[log2(avg) ± level]', () => {
    const p0 = resolveOptions({ avgSize: 16384, normalization: 0 });
    expect([p0.maskSmall, p0.maskLarge]).toEqual([0x0000d90313530000n, 0x0000d90313530000n]);
    const p3 = resolveOptions({ avgSize: 16384, normalization: 3 });
    expect([p3.maskSmall, p3.maskLarge]).toEqual([0x0000d90703537000n, 0x0000d90003530000n]);
  });

  it('accepts the limits of the mask table', () => {
    expect(resolveOptions({ avgSize: 128, minSize: 64 }).avgSize).toBe(128);
    expect(resolveOptions({ avgSize: 8 * 1024 * 1024 }).avgSize).toBe(8 * 1024 * 1024);
    expect(resolveOptions({ avgSize: 32 * 1024 * 1024, normalization: 0 }).avgSize).toBe(32 * 1024 * 1024);
    expect(resolveOptions({ seed: (1n << 64n) - 1n }).seed).toBe((1n << 64n) - 1n);
  });

  const invalid: [string, ChunkOptions, string, RegExp][] = [
    ['avg not a power of two', { avgSize: 1000 }, 'avgSize', /avgSize must be a power of two, got 1000/],
    ['avg not an integer', { avgSize: 1024.5 }, 'avgSize', /avgSize must be a positive integer, got 1024.5/],
    ['avg zero', { avgSize: 0 }, 'avgSize', /avgSize must be a positive integer, got 0/],
    [
      'avg too small for the level',
      { avgSize: 64, minSize: 64 },
      'avgSize',
      /from 128 to 8388608 at normalization 2/,
    ],
    ['avg too large for the level', { avgSize: 16 * 1024 * 1024 }, 'avgSize', /got 16777216/],
    ['avg too large at level 3', { avgSize: 8 * 1024 * 1024, normalization: 3 }, 'avgSize', /to 4194304/],
    ['min below 64', { avgSize: 256, minSize: 63 }, 'minSize', /minSize must be at least 64, got 63/],
    ['min ≥ max', { avgSize: 256, minSize: 256, maxSize: 256 }, 'minSize', /minSize must be below maxSize/],
    ['avg below min', { avgSize: 256, minSize: 300 }, 'avgSize', /avgSize 256 below minSize 300/],
    ['avg above max', { avgSize: 4096, maxSize: 2000 }, 'avgSize', /avgSize 4096 above maxSize 2000/],
    ['max not an integer', { maxSize: Number.NaN }, 'maxSize', /maxSize must be a positive integer, got NaN/],
    [
      'level above 3',
      { normalization: 4 },
      'normalization',
      /normalization must be an integer from 0 to 3, got 4/,
    ],
    ['level negative', { normalization: -1 }, 'normalization', /got -1/],
    ['seed negative', { seed: -1n }, 'seed', /seed must be an unsigned 64-bit integer, got -1/],
    ['seed above 64 bits', { seed: 1n << 64n }, 'seed', /unsigned 64-bit/],
    ['seed fractional', { seed: 1.5 }, 'seed', /seed must be a bigint or a safe integer, got 1.5/],
  ];

  for (const [what, options, option, message] of invalid) {
    it(`rejects ${what} with a ChunkerOptionError naming ${option}`, async () => {
      const data = new Uint8Array(10);
      for (const run of [
        () => chunkBuffer(data, options),
        () => chunkStream([data] as unknown as AsyncIterable<Uint8Array>, options).next(),
      ]) {
        let caught: unknown;
        try {
          await run();
        } catch (e) {
          caught = e;
        }
        expect(caught).toBeInstanceOf(ChunkerOptionError);
        const err = caught as ChunkerOptionError;
        expect(err.option).toBe(option);
        expect(err.code).toBe('CHUNKER_ERR_INVALID_OPTION');
        expect(err.message).toMatch(message);
      }
    });
  }
});

describe('error classes', () => {
  const cause = new Error('root');
  const table: [ChunkerError, string, string, string, abstract new (...args: never) => unknown][] = [
    [
      new ChunkerOptionError('maxSize', 'maxSize must be a positive integer, got -1', { cause }),
      'ChunkerOptionError',
      'CHUNKER_ERR_INVALID_OPTION',
      'maxSize must be a positive integer, got -1',
      ChunkerOptionError,
    ],
    [
      new ChunkerInputError('data must be a Uint8Array, got string', { cause }),
      'ChunkerInputError',
      'CHUNKER_ERR_INVALID_INPUT',
      'data must be a Uint8Array, got string',
      ChunkerInputError,
    ],
    [
      new ChunkerWasmUnavailableError('cannot instantiate the WebAssembly scan kernel', { cause }),
      'ChunkerWasmUnavailableError',
      'CHUNKER_ERR_WASM_UNAVAILABLE',
      'cannot instantiate the WebAssembly scan kernel',
      ChunkerWasmUnavailableError,
    ],
  ];
  for (const [err, name, code, message, cls] of table) {
    it(`${name}: name, code, instanceof, message, cause`, () => {
      expect(err.name).toBe(name);
      expect(err.code).toBe(code);
      expect(err).toBeInstanceOf(cls);
      expect(err).toBeInstanceOf(ChunkerError);
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toBe(message);
      expect(err.cause).toBe(cause);
    });
  }

  it('chunkBuffer rejects non-bytes with a ChunkerInputError', () => {
    expect(() => chunkBuffer('abc' as unknown as Uint8Array)).toThrow(
      new ChunkerInputError('data must be a Uint8Array, got string'),
    );
    expect(() => chunkBuffer([1, 2] as unknown as Uint8Array)).toThrow(
      /data must be a Uint8Array, got Array/,
    );
  });
});
