/**
 * Digest helpers (image-spec v1.1.1 `descriptor.md#digests`,
 * https://github.com/opencontainers/image-spec/blob/v1.1.1/descriptor.md#digests).
 * `sha256` is the algorithm this project writes; `sha512` is accepted on read.
 */
import { createHash, type Hash } from 'node:crypto';
import { DigestInvalidError } from './errors.js';
import type { Descriptor } from './types.js';

/** A registered digest algorithm this package can verify. */
export type DigestAlgorithm = 'sha256' | 'sha512';

/** A digest split into its parts. */
export interface ParsedDigest {
  /** Algorithm, e.g. `sha256`. */
  algorithm: DigestAlgorithm;
  /** Lowercase hex encoding of the hash. */
  encoded: string;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** `true` when `value` is a well-formed `sha256:`/`sha512:` digest (lowercase hex, exact length). */
export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST_RE.test(value);
}

/**
 * Splits a digest into algorithm and encoded hash.
 * @throws {DigestInvalidError} naming what is wrong when `value` is not a supported digest.
 */
export function parseDigest(value: string): ParsedDigest {
  if (typeof value !== 'string') {
    throw new DigestInvalidError(`digest must be a string, got ${typeof value}`);
  }
  const colon = value.indexOf(':');
  if (colon <= 0) {
    throw new DigestInvalidError(`digest ${JSON.stringify(value)} has no "algorithm:" prefix`);
  }
  const algorithm = value.slice(0, colon);
  const encoded = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new DigestInvalidError(
      `digest algorithm ${JSON.stringify(algorithm)} is not supported (expected sha256 or sha512)`,
      { digest: value },
    );
  }
  const length = algorithm === 'sha256' ? 64 : 128;
  if (encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) {
    throw new DigestInvalidError(
      `digest ${JSON.stringify(value)} must be ${algorithm}: followed by ${length} lowercase hex characters`,
      { digest: value },
    );
  }
  return { algorithm, encoded };
}

/** `sha256:<hex>` digest of `bytes`. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Digest of `bytes` with the given algorithm. */
export function digestBytes(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** An incremental digester: feed it bytes, read the digest at the end. */
export interface Digester {
  /** Adds bytes. */
  update(bytes: Uint8Array): void;
  /** The `algorithm:hex` digest of everything added; call once. */
  digest(): string;
}

/** Creates an incremental {@link Digester}. */
export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Digester {
  const hash: Hash = createHash(algorithm);
  return {
    update: (bytes) => {
      hash.update(bytes);
    },
    digest: () => `${algorithm}:${hash.digest('hex')}`,
  };
}

/** Digests a stream without holding it in memory; returns its digest and size. */
export async function digestStream(
  source: AsyncIterable<Uint8Array>,
  algorithm: DigestAlgorithm = 'sha256',
): Promise<{ digest: string; size: number }> {
  const d = createDigester(algorithm);
  let size = 0;
  for await (const chunk of source) {
    d.update(chunk);
    size += chunk.byteLength;
  }
  return { digest: d.digest(), size };
}

/** The descriptor of in-memory bytes. */
export function descriptorOf(bytes: Uint8Array, mediaType: string): Descriptor {
  return { mediaType, digest: sha256Digest(bytes), size: bytes.byteLength };
}
