/**
 * THE shared verifying reader. Every store in the project (registry, image layout, core's
 * memory and Redis stores) hands out its bytes through {@link verifyStream} or
 * {@link verifyBytes}; nothing else verifies content.
 */
import { createHash } from 'node:crypto';
import { parseDigest } from './digest.js';
import { DigestMismatchError, InvalidOptionError, SizeInvalidError, SizeMismatchError } from './errors.js';
import type { BlobRange, Descriptor } from './types.js';

/** Options for {@link verifyStream}. */
export interface VerifyOptions {
  /** Stops reading (and throws the signal's reason) when it fires. */
  signal?: AbortSignal;
  /** Where the bytes come from, for error messages (no credentials). */
  location?: string;
  /**
   * Hash the bytes and compare with `expected.digest`. `false` checks the size only, for a
   * caller that proves the content itself (`FetchBlobOptions.contentVerified`).
   * @default true
   */
  checkDigest?: boolean;
}

function checkExpected(expected: Pick<Descriptor, 'digest' | 'size'>): 'sha256' | 'sha512' {
  const { algorithm } = parseDigest(expected.digest);
  if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
    throw new SizeInvalidError(
      `descriptor size must be a non-negative integer, got ${String(expected.size)}`,
      {
        digest: expected.digest,
      },
    );
  }
  return algorithm;
}

function where(options: VerifyOptions | undefined): string {
  return options?.location ? ` from ${options.location}` : '';
}

/**
 * Validates `FetchBlobOptions.range` against the blob, before any read: `offset` and `length`
 * safe integers, `offset >= 0`, `length >= 1`, `offset + length <= expected.size`. Every store's
 * reader calls it, so they all refuse the same ranges with the same message. A ranged read then
 * goes through {@link verifyStream} with `{ size: range.length }` and `checkDigest: false`: the
 * digest of a part cannot be checked, its length can.
 * @returns the range (a fresh object), or `undefined` when `range` is `undefined` (the whole blob).
 * @throws {InvalidOptionError} naming `range`.
 */
export function checkBlobRange(
  range: unknown,
  expected: Pick<Descriptor, 'digest' | 'size'>,
): BlobRange | undefined {
  if (range === undefined) return undefined;
  const fail = (message: string) => new InvalidOptionError(message, { digest: expected.digest });
  if (typeof range !== 'object' || range === null) {
    throw fail(`range must be an object { offset, length }, got ${range === null ? 'null' : typeof range}`);
  }
  const { offset, length } = range as Partial<Record<keyof BlobRange, unknown>>;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw fail(`range.offset must be a non-negative integer, got ${String(offset)}`);
  }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 1) {
    throw fail(`range.length must be a positive integer, got ${String(length)}`);
  }
  if (offset + length > expected.size) {
    throw fail(
      `range (offset ${offset}, length ${length}) ends at byte ${offset + length}, past the end of the ${expected.size}-byte blob ${expected.digest}`,
    );
  }
  return { offset, length };
}

/**
 * Passes `source` through while checking its size and digest against `expected`.
 *
 * - More bytes than `expected.size` throw {@link SizeMismatchError} as soon as they arrive.
 * - Fewer bytes, or a digest mismatch, throw at the end.
 * - The last piece is held back until the digest checks out, so complete unverified content
 *   is never handed on: a consumer that writes what it receives holds at most a truncated
 *   prefix when verification fails, and must discard it on the error.
 *
 * Empty pieces are dropped. The input digest is validated before the first read
 * ({@link DigestInvalidError} / {@link SizeInvalidError}).
 */
export async function* verifyStream(
  source: AsyncIterable<Uint8Array>,
  expected: Pick<Descriptor, 'digest' | 'size'>,
  options?: VerifyOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const algorithm = checkExpected(expected);
  const signal = options?.signal;
  signal?.throwIfAborted();
  const hash = options?.checkDigest === false ? undefined : createHash(algorithm);
  let seen = 0;
  let held: Uint8Array | undefined;
  for await (const chunk of source) {
    signal?.throwIfAborted();
    if (chunk.byteLength === 0) continue;
    seen += chunk.byteLength;
    if (seen > expected.size) {
      throw new SizeMismatchError(
        `content${where(options)} is longer than the expected ${expected.size} bytes (got at least ${seen})`,
        { digest: expected.digest },
      );
    }
    hash?.update(chunk);
    if (held !== undefined) yield held;
    held = chunk;
  }
  signal?.throwIfAborted();
  if (seen !== expected.size) {
    throw new SizeMismatchError(
      `content${where(options)} is shorter than the expected ${expected.size} bytes (got ${seen})`,
      { digest: expected.digest },
    );
  }
  if (hash !== undefined) {
    const actual = `${algorithm}:${hash.digest('hex')}`;
    if (actual !== expected.digest) {
      throw new DigestMismatchError(
        `content${where(options)} has digest ${actual}, expected ${expected.digest}`,
        {
          digest: expected.digest,
        },
      );
    }
  }
  if (held !== undefined) yield held;
}

/**
 * Verifies in-memory bytes against `expected` and returns them unchanged.
 * @throws {SizeMismatchError | DigestMismatchError} on a mismatch.
 */
export function verifyBytes(
  bytes: Uint8Array,
  expected: Pick<Descriptor, 'digest' | 'size'>,
  options?: Omit<VerifyOptions, 'signal'>,
): Uint8Array {
  const algorithm = checkExpected(expected);
  if (bytes.byteLength !== expected.size) {
    throw new SizeMismatchError(
      `content${where(options)} is ${bytes.byteLength} bytes, expected ${expected.size}`,
      { digest: expected.digest },
    );
  }
  const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
  if (actual !== expected.digest) {
    throw new DigestMismatchError(
      `content${where(options)} has digest ${actual}, expected ${expected.digest}`,
      {
        digest: expected.digest,
      },
    );
  }
  return bytes;
}
