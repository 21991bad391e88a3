import { describe, expect, it } from 'vitest';
import { seededBytes } from '../../test/helpers.js';
import { EntryCorruptError, EntryTooLargeError, InvalidOptionError } from '../errors.js';
import { frameContentSize, getZstdCodec, hasNodeZstd, JS_DECODE_MAX } from './zstd.js';

const text = Buffer.from('task-cache '.repeat(100_000));

describe('zstd codecs', () => {
  it(`auto picks ${hasNodeZstd() ? 'node' : 'zstd-codec'} on Node ${process.versions.node}`, () => {
    expect(getZstdCodec('auto').name).toBe(hasNodeZstd() ? 'node' : 'zstd-codec');
    if (!hasNodeZstd()) expect(() => getZstdCodec('node')).toThrow(InvalidOptionError);
    expect(() => getZstdCodec('brotli' as 'node')).toThrow(InvalidOptionError);
  });

  const available = hasNodeZstd() ? (['node', 'zstd-codec'] as const) : (['zstd-codec'] as const);
  for (const writer of available) {
    for (const reader of available) {
      it(`${reader} reads what ${writer} writes (text and random data), frames declare their size`, async () => {
        // Large frames (zstd-codec's WebAssembly on its path) and small ones (≤ JS_DECODE_MAX: fzstd).
        const small = [Buffer.from('hello'), text.subarray(0, 64 * 1024), seededBytes(JS_DECODE_MAX, 2)];
        for (const input of [text, seededBytes(1024 * 1024, 1), Buffer.alloc(0), ...small]) {
          const c = await getZstdCodec(writer).compress(input, 3);
          expect(frameContentSize(c)).toBe(input.byteLength);
          const d = await getZstdCodec(reader).decompress(c, input.byteLength);
          expect(Buffer.from(d).equals(input)).toBe(true);
        }
      });
    }
    it(`${writer}: decompression stops past the allowed size; garbage is corrupt`, async () => {
      const codec = getZstdCodec(writer);
      const c = await codec.compress(text, 3);
      await expect(codec.decompress(c, text.byteLength - 1)).rejects.toBeInstanceOf(EntryTooLargeError);
      await expect(codec.decompress(Buffer.from('not zstd at all'), 100)).rejects.toBeInstanceOf(
        EntryCorruptError,
      );
      // A small frame (the fzstd path on zstd-codec) whose blocks are damaged, or cut short.
      const sc = Buffer.from(await codec.compress(text.subarray(0, 32 * 1024), 3));
      const cut = sc.subarray(0, sc.byteLength - 8);
      await expect(codec.decompress(cut, 32 * 1024)).rejects.toBeInstanceOf(EntryCorruptError);
      const smallText = text.subarray(0, 32 * 1024);
      await expect(codec.decompress(sc, smallText.byteLength - 1)).rejects.toBeInstanceOf(EntryTooLargeError);
    });
  }
});
