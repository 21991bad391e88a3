import { describe, expect, it } from 'vitest';
import { collect, piecesOf, randomBytes } from '../test/helpers.js';
import { ChunkerInputError, chunkBuffer, chunkStream } from './index.js';

const opts = { avgSize: 4096 } as const; // min 1024, max 16384

describe('chunkStream', () => {
  it('accepts a web ReadableStream', async () => {
    const data = randomBytes(100_000, 1);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < data.length; i += 3000) controller.enqueue(data.slice(i, i + 3000));
        controller.close();
      },
    });
    const chunks = await collect(chunkStream(stream, opts));
    expect(chunks.map(({ data: _, ...c }) => c)).toEqual(chunkBuffer(data, opts));
  });

  it('accepts a ReadableStream-like object that only has getReader()', async () => {
    const data = randomBytes(50_000, 2);
    const inner = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(data);
        controller.close();
      },
    });
    const readerOnly = { getReader: () => inner.getReader() } as unknown as ReadableStream<Uint8Array>;
    const chunks = await collect(chunkStream(readerOnly, opts));
    expect(chunks.map(({ data: _, ...c }) => c)).toEqual(chunkBuffer(data, opts));
  });

  it('a chunk inside one piece is a view of it; a chunk spanning pieces is a fresh copy', async () => {
    const data = randomBytes(200_000, 3);
    const pieces = [data.subarray(0, 150_000), data.subarray(150_000)];
    const chunks = await collect(chunkStream(piecesOf(data, [150_000]), opts));
    const spanning = chunks.filter((c) => c.offset < 150_000 && c.offset + c.length > 150_000);
    expect(spanning).toHaveLength(1);
    expect(spanning[0]!.data!.buffer).not.toBe(data.buffer);
    for (const c of chunks.filter((x) => !spanning.includes(x))) {
      expect(c.data!.buffer).toBe(data.buffer);
      expect(c.data!.byteOffset).toBe(c.offset);
    }
    expect(pieces[0]!.length + pieces[1]!.length).toBe(data.length);
  });

  it('streams: every chunk arrives before the source has run more than maxSize + one piece ahead', async () => {
    const data = randomBytes(2_000_000, 4);
    const piece = 5000;
    let pulled = 0;
    async function* source() {
      for (let i = 0; i < data.length; i += piece) {
        const p = data.subarray(i, i + piece);
        pulled += p.length;
        yield p;
      }
    }
    let count = 0;
    for await (const c of chunkStream(source(), opts)) {
      count++;
      expect(pulled - c.offset).toBeLessThanOrEqual(16384 + piece);
    }
    expect(count).toBeGreaterThan(100);
  });

  it('breaking out of the loop ends the source', async () => {
    let finalized = false;
    async function* source() {
      try {
        for (let i = 0; ; i++) yield randomBytes(10_000, i + 1);
      } finally {
        finalized = true;
      }
    }
    for await (const _ of chunkStream(source(), opts)) break;
    expect(finalized).toBe(true);
  });

  it('rejects a piece that is not a Uint8Array with a ChunkerInputError', async () => {
    async function* source() {
      yield new Uint8Array(10);
      yield 'text' as unknown as Uint8Array;
    }
    await expect(collect(chunkStream(source(), opts))).rejects.toThrow(
      new ChunkerInputError('source yielded string, expected Uint8Array'),
    );
  });

  it('rejects a source that is not a stream with a ChunkerInputError', async () => {
    await expect(collect(chunkStream(42 as unknown as AsyncIterable<Uint8Array>, opts))).rejects.toThrow(
      /source must be an AsyncIterable<Uint8Array> or a ReadableStream<Uint8Array>, got number/,
    );
  });

  it('propagates a source error', async () => {
    async function* source(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(10);
      throw new Error('disk on fire');
    }
    await expect(collect(chunkStream(source(), opts))).rejects.toThrow('disk on fire');
  });
});

describe('AbortSignal', () => {
  it('an aborted signal stops chunkBuffer and chunkStream with its reason', async () => {
    const reason = new Error('stop');
    const signal = AbortSignal.abort(reason);
    expect(() => chunkBuffer(new Uint8Array(10), { signal })).toThrow(reason);
    await expect(collect(chunkStream(piecesOf(new Uint8Array(10), [1]), { signal }))).rejects.toBe(reason);
  });

  it('chunkBuffer with a live signal (scanned in 4 MiB slices) gives the same chunks', () => {
    const data = randomBytes(9 * 1024 * 1024 + 3, 8);
    const signal = new AbortController().signal;
    const expected = chunkBuffer(data, { avgSize: 65536 });
    expect(expected.length).toBeGreaterThan(100);
    expect(chunkBuffer(data, { avgSize: 65536, signal })).toEqual(expected);
  });

  it('aborting while the source is stalled rejects promptly', async () => {
    const controller = new AbortController();
    async function* stalled() {
      yield randomBytes(1000, 5);
      await new Promise(() => {}); // never yields again
    }
    const pending = collect(chunkStream(stalled(), { ...opts, signal: controller.signal }));
    setTimeout(() => controller.abort(new Error('user cancelled')), 10);
    await expect(pending).rejects.toThrow('user cancelled');
  });

  it('aborting between chunks stops the iteration', async () => {
    const controller = new AbortController();
    const data = randomBytes(500_000, 6);
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const c of chunkStream(piecesOf(data, [500_000]), {
          ...opts,
          signal: controller.signal,
        })) {
          seen.push(c.offset);
          if (seen.length === 3) controller.abort(new Error('enough'));
        }
      })(),
    ).rejects.toThrow('enough');
    expect(seen).toHaveLength(3);
  });
});
