/** Deterministic pseudo-random bytes for tests (xorshift32), streamed so large blobs never sit in memory. */
import { createHash } from 'node:crypto';

/** Yields `size` deterministic bytes for `seed` in pieces of `pieceSize`. */
export async function* seededStream(
  seed: number,
  size: number,
  pieceSize = 64 * 1024,
): AsyncGenerator<Uint8Array> {
  let x = seed >>> 0 || 0x9e3779b9;
  let left = size;
  while (left > 0) {
    const n = Math.min(pieceSize, left);
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) {
      // xorshift32
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      words[i] = x;
    }
    yield new Uint8Array(words.buffer, 0, n);
    left -= n;
  }
}

/** Deterministic bytes in memory (for small blobs). */
export function seededBytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    for (let b = 0; b < 4 && i + b < size; b++) out[i + b] = (x >>> (8 * b)) & 0xff;
  }
  return out;
}

/** sha256 digest and size of a seeded stream, computed by streaming it once. */
export async function seededDigest(seed: number, size: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of seededStream(seed, size)) hash.update(piece);
  return `sha256:${hash.digest('hex')}`;
}
