// Blobs of an image layout: `blobs/<algorithm>/<hex>`, written through a temp file in their final
// directory while the shared verifier checks them, fsynced and renamed into place; read through
// the same verifier (a ranged read: only its slice of the file, length-checked).
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest, parseDigest } from '../digest.js';
import { BlobUnknownError, DigestInvalidError, ManifestInvalidError, SizeInvalidError } from '../errors.js';
import type {
  BlobBody,
  BlobChecker,
  BlobFetcher,
  BlobPusher,
  Descriptor,
  FetchBlobOptions,
  PushBlobOptions,
  RequestOptions,
} from '../types.js';
import { checkBlobRange, verifyStream } from '../verify.js';
import { isMissing, type LayoutContext, MAX_MANIFEST_BYTES, sizeOf, TEMP_PREFIX } from './files.js';

/** Validates a digest given by a caller (also non-strings). */
export function checkDigest(digest: unknown): string {
  if (!isDigest(digest)) {
    // parseDigest throws the precise DigestInvalidError for a string; cover non-strings too.
    if (typeof digest === 'string') parseDigest(digest);
    throw new DigestInvalidError(`digest must be a string, got ${typeof digest}`);
  }
  return digest;
}

/** Validates a size given by a caller. */
export function checkSize(size: unknown, digest: string): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new SizeInvalidError(`descriptor size must be a non-negative integer, got ${String(size)}`, {
      digest,
    });
  }
  return size;
}

async function* bodyIterable(body: BlobBody): AsyncIterable<Uint8Array> {
  if (body instanceof Uint8Array) {
    yield body;
  } else if (typeof body === 'function') {
    yield* body();
  } else {
    yield* body;
  }
}

/** The blob capabilities of a layout, plus reading a whole (small) manifest blob. */
export interface LayoutBlobs extends BlobFetcher, BlobChecker, BlobPusher {
  /** A manifest blob's bytes, verified; `undefined` when the blob is not there. */
  readManifestBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined>;
}

/** Creates the blob part of a layout store. */
export function createLayoutBlobs(ctx: LayoutContext): LayoutBlobs {
  const { files, location } = ctx;

  async function fetchBlob(
    descriptor: Descriptor,
    opts?: FetchBlobOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const digest = checkDigest(descriptor?.digest);
    const size = checkSize(descriptor.size, digest);
    const range = checkBlobRange(opts?.range, { digest, size });
    opts?.signal?.throwIfAborted();
    // Open first so a missing blob is reported here, not on the first read.
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(files.blobPath(digest), 'r');
    } catch (error) {
      if (isMissing(error)) {
        throw new BlobUnknownError(`blob ${digest} is not in ${location}`, { digest, cause: error });
      }
      throw error;
    }
    // A ranged read reads only its slice of the file (`end` is inclusive) and checks its length:
    // the digest of a part cannot be checked.
    const stream = handle.createReadStream({
      highWaterMark: 1024 * 1024,
      ...(range ? { start: range.offset, end: range.offset + range.length - 1 } : {}),
    });
    return (async function* () {
      try {
        yield* verifyStream(stream, range ? { digest, size: range.length } : { digest, size }, {
          signal: opts?.signal,
          location: range
            ? `${location} (${digest} bytes ${range.offset}-${range.offset + range.length - 1})`
            : location,
          checkDigest: range === undefined && opts?.contentVerified !== true,
        });
      } finally {
        // Closes the file also when verification stopped before reading (abort, bad input).
        stream.destroy();
      }
    })();
  }

  async function blobExists(
    descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
    opts?: RequestOptions,
  ): Promise<boolean> {
    const digest = checkDigest(descriptor?.digest);
    opts?.signal?.throwIfAborted();
    return (await sizeOf(files.blobPath(digest))) !== undefined;
  }

  async function pushBlob(descriptor: Descriptor, body: BlobBody, opts?: PushBlobOptions): Promise<void> {
    const digest = checkDigest(descriptor?.digest);
    const size = checkSize(descriptor.size, digest);
    const signal = opts?.signal;
    signal?.throwIfAborted();
    const target = files.blobPath(digest);
    // Content-addressed: a blob of the right size under its digest is the same blob. Reads
    // verify it anyway.
    if ((await sizeOf(target)) === size) return;
    await files.ensureLayout();
    await mkdir(join(target, '..'), { recursive: true });
    const tmp = join(
      target,
      '..',
      `${TEMP_PREFIX}${parseDigest(digest).encoded.slice(0, 16)}-${randomBytes(6).toString('hex')}`,
    );
    const handle = await open(tmp, 'wx', 0o644);
    let closed = false;
    try {
      for await (const chunk of verifyStream(bodyIterable(body), { digest, size }, { signal })) {
        await handle.write(chunk);
      }
      if (ctx.fsync) await handle.sync();
      closed = true;
      await handle.close();
      // NOTE: rename() replaces an identical blob another writer renamed in meanwhile; both
      // were verified against the same digest, so either copy is right.
      await rename(tmp, target);
    } catch (error) {
      if (!closed) await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }

  async function readManifestBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array | undefined> {
    if (descriptor.size > MAX_MANIFEST_BYTES) {
      throw new ManifestInvalidError(
        `manifest ${descriptor.digest} in ${location} is ${descriptor.size} bytes, above the ${MAX_MANIFEST_BYTES}-byte limit`,
        { digest: descriptor.digest },
      );
    }
    const parts: Uint8Array[] = [];
    try {
      const source = createReadStream(files.blobPath(descriptor.digest));
      for await (const chunk of verifyStream(source, descriptor, { signal, location })) parts.push(chunk);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    return Buffer.concat(parts);
  }

  return { fetchBlob, blobExists, pushBlob, readManifestBlob };
}
