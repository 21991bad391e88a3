/**
 * Test helpers: an independent, deliberately naive FastCDC 2020 (BigInt, a line-by-line transcription
 * of the reference `cut_gear` of nlfiedler/fastcdc-rs `v2020`, the masks table typed in again from the
 * paper), fixture readers, and a seeded data generator.
 */
import { readFileSync } from 'node:fs';

export const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);

/** The GEAR table parsed from the fixture (not from src/internal/gear.ts). */
export function fixtureGear(): bigint[] {
  return readFileSync(fixture('gear.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => BigInt(l));
}

/** One line of fastcdc2020_test_vectors.txt. */
export interface Vector {
  offset: number;
  length: number;
  sha256: string;
  fingerprint: bigint;
}

/** The vectors by seed, parsed from the fixture. */
export function fixtureVectors(): Map<bigint, Vector[]> {
  const bySeed = new Map<bigint, Vector[]>();
  let current: Vector[] | undefined;
  for (const raw of readFileSync(fixture('fastcdc2020_test_vectors.txt'), 'utf8').split('\n')) {
    const line = raw.trim();
    const seed = /^# Seed: (\d+)$/.exec(line);
    if (seed) {
      current = [];
      bySeed.set(BigInt(seed[1]!), current);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const [offset, length, sha256, fingerprint] = line.split(/\s+/);
    current!.push({
      offset: Number(offset),
      length: Number(length),
      sha256: sha256!,
      fingerprint: BigInt(fingerprint!),
    });
  }
  return bySeed;
}

const PAPER_MASKS: Record<number, bigint> = {
  5: 0x0000000001804110n,
  6: 0x0000000001803110n,
  7: 0x0000000018035100n,
  8: 0x0000001800035300n,
  9: 0x0000019000353000n,
  10: 0x0000590003530000n,
  11: 0x0000d90003530000n,
  12: 0x0000d90103530000n,
  13: 0x0000d90303530000n,
  14: 0x0000d90313530000n,
  15: 0x0000d90f03530000n,
  16: 0x0000d90303537000n,
  17: 0x0000d90703537000n,
  18: 0x0000d90707537000n,
  19: 0x0000d91707537000n,
  20: 0x0000d91747537000n,
  21: 0x0000d91767537000n,
  22: 0x0000d93767537000n,
  23: 0x0000d93777537000n,
  24: 0x0000d93777577000n,
  25: 0x0000db3777577000n,
};

export interface RefParams {
  avgSize: number;
  minSize: number;
  maxSize: number;
  normalization: number;
  seed: bigint;
}

export interface RefChunk {
  offset: number;
  length: number;
  fingerprint: bigint;
}

const GEAR = fixtureGear();
const u64 = (x: bigint) => BigInt.asUintN(64, x);

/** Naive reference FastCDC 2020 (slow: BigInt per byte). */
export function referenceChunks(data: Uint8Array, p: RefParams): RefChunk[] {
  const gear = GEAR.map((g) => g ^ p.seed);
  const gearLs = GEAR.map((g) => u64(g << 1n) ^ u64(p.seed << 1n));
  const bits = Math.log2(p.avgSize);
  const maskS = PAPER_MASKS[bits + p.normalization]!;
  const maskL = PAPER_MASKS[bits - p.normalization]!;
  const maskSLs = maskS << 1n;
  const maskLLs = maskL << 1n;
  const out: RefChunk[] = [];
  let offset = 0;
  while (offset < data.length) {
    const source = data.subarray(offset);
    const [fingerprint, length] = cutGear(source);
    out.push({ offset, length, fingerprint });
    offset += length;
  }
  return out;

  function cutGear(source: Uint8Array): [bigint, number] {
    let remaining = source.length;
    if (remaining <= p.minSize) return [0n, remaining];
    let center = p.avgSize;
    if (remaining > p.maxSize) remaining = p.maxSize;
    else if (remaining < center) center = remaining;
    let index = Math.floor(p.minSize / 2);
    let hash = 0n;
    while (index < Math.floor(center / 2)) {
      const a = index * 2;
      hash = u64((hash << 2n) + gearLs[source[a]!]!);
      if ((hash & maskSLs) === 0n) return [hash, a];
      hash = u64(hash + gear[source[a + 1]!]!);
      if ((hash & maskS) === 0n) return [hash, a + 1];
      index++;
    }
    while (index < Math.floor(remaining / 2)) {
      const a = index * 2;
      hash = u64((hash << 2n) + gearLs[source[a]!]!);
      if ((hash & maskLLs) === 0n) return [hash, a];
      hash = u64(hash + gear[source[a + 1]!]!);
      if ((hash & maskL) === 0n) return [hash, a + 1];
      index++;
    }
    return [hash, remaining];
  }
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for 64 MiB. */
export function randomBytes(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, length);
}

/** Splits `data` into pieces of the given sizes (cycled), as an async iterable. */
export async function* piecesOf(data: Uint8Array, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    yield data.subarray(at, Math.min(at + n, data.length));
    at += n;
  }
}

/** Collects an async iterable. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
