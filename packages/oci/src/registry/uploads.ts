// Pushing blobs to a registry (distribution-spec v1.1.1 "Pushing blobs"): an optional
// cross-repository mount, then a session (`POST`) finished by one monolithic `PUT` (the default:
// two requests per blob) or, above `monolithicUploadMaxBytes` or after a 413, by chunked `PATCH`es
// of `chunkSize` and a closing `PUT`. A failed upload restarts from a new session while the retry
// policy calls it transient and the body can be replayed. Every session start (and mount) takes a
// slot of the client's push-rate cap, when one is set.
//
// What the answers show is learned (`ctx.learned`, shared by the client, remembered by core): a
// refused monolithic PUT (413) sends later blobs in chunks at once; `OCI-Chunk-Min-Length` or a
// refused small part raises the PATCH size, a refused large part lowers it, and the blob goes up
// again once in the learned size; a mount refused outright (401/403/404) is not asked again.

import {
  DeniedError,
  InvalidOptionError,
  type OciError,
  RegistryError,
  SizeMismatchError,
  UnauthorizedError,
} from '../errors.js';
import { parseRetryAfter } from '../internal/headers.js';
import {
  discard,
  header,
  isReplayable,
  type RequestBody,
  type Response,
  sleep,
} from '../internal/transport/index.js';
import { validateRepository } from '../reference.js';
import type { BlobBody, BlobChecker, BlobPusher, Descriptor, PushBlobOptions } from '../types.js';
import { verifyBytes } from '../verify.js';
import {
  checkDescriptor,
  failure,
  MAX_PATCH_BYTES,
  patchSize,
  type RepositoryContext,
  scopes,
} from './context.js';

const MiB = 1024 * 1024;
/** The largest `PATCH` body every registry we know takes (GHCR refuses more). */
const SAFE_MAX_PATCH = 4 * MiB;
/** The smallest part but the last an S3-backed registry takes (ECR: 5 MiB, S3's multipart minimum). */
const S3_MIN_PART = 5 * MiB;
/** Uploads of one blob started again after the registry refused a part's size. */
const MAX_SIZE_RESTARTS = 2;

/** A `PATCH` refused for its size: the limit is learned; start the blob's upload again. */
class PartSizeRefused extends Error {
  constructor(readonly refusal: OciError) {
    super('the registry refused a PATCH part of this size');
  }
}

/** `Retry-After` of a failed commit `PUT`, for the upload retry loop. */
const retryAfterOf = new WeakMap<OciError, number>();

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** Appends `digest=` to an upload `Location`, used exactly as returned. */
function withDigest(location: string, digest: string): string {
  // NOTE: the Location is used exactly as returned (its query may carry upload state), so
  // `digest=` is appended textually instead of re-serialising the query.
  const hash = location.indexOf('#');
  const base = hash >= 0 ? location.slice(0, hash) : location;
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}digest=${encodeURIComponent(digest)}`;
}

/** Re-cuts a stream into pieces of exactly `size` bytes (the last may be shorter). */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buffer = new Uint8Array(size);
  let filled = 0;
  for await (const chunk of source) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const take = Math.min(size - filled, chunk.byteLength - offset);
      buffer.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === size) {
        yield buffer;
        buffer = new Uint8Array(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buffer.subarray(0, filled);
}

async function* bytesSource(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** The blob-pushing capability of a repository; `blobExists` tells a landed `PUT` from a lost one. */
export function createBlobWriter(ctx: RepositoryContext, checker: BlobChecker): BlobPusher {
  const { transport, transfers, origin, name } = ctx;
  const { push } = scopes(ctx);

  function uploadLocation(res: Response, method: string, url: string): string {
    const loc = header(res, 'location');
    if (!loc) {
      throw new RegistryError('registry sent no Location for the upload session', {
        method,
        url,
        statusCode: res.statusCode,
      });
    }
    // Relative Locations resolve against the request URL; absolute ones are kept as they are.
    return /^[a-z][a-z0-9+.-]*:/i.test(loc) ? loc : new URL(loc, res.url).toString();
  }

  async function startUpload(signal?: AbortSignal): Promise<string> {
    await ctx.pushRate?.take(signal);
    const url = `${origin}/v2/${name}/blobs/uploads/`;
    const res = await transport.send({
      method: 'POST',
      url,
      headers: { 'content-length': '0' },
      scopes: push,
      signal,
    });
    if (res.statusCode !== 202) {
      throw await failure(ctx, res, 'POST', { action: 'start blob upload', notFound: 'name' });
    }
    await discard(res);
    // distribution-spec v1.1: the smallest PATCH part but the last the registry takes.
    const min = Number(header(res, 'oci-chunk-min-length'));
    if (Number.isSafeInteger(min) && min > 0 && min <= MAX_PATCH_BYTES) ctx.learned.minPatchBytes = min;
    return uploadLocation(res, 'POST', url);
  }

  /** Tries a cross-repository mount: `true` when mounted, a Location for a 202, else `undefined`. */
  async function tryMount(
    descriptor: Descriptor,
    from: string,
    signal?: AbortSignal,
  ): Promise<true | string | undefined> {
    validateRepository(from);
    await ctx.pushRate?.take(signal);
    const url = `${origin}/v2/${name}/blobs/uploads/?mount=${encodeURIComponent(descriptor.digest)}&from=${encodeURIComponent(from)}`;
    let res: Response;
    try {
      res = await transport.send({
        method: 'POST',
        url,
        headers: { 'content-length': '0' },
        scopes: [...push, `repository:${from}:pull`],
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // A token server refusing the source scope means: upload normally.
      if (error instanceof UnauthorizedError || error instanceof DeniedError) return undefined;
      throw error;
    }
    if (res.statusCode === 201 || res.statusCode === 202) {
      await discard(res);
      if (res.statusCode === 201) ctx.learned.crossRepoMount = true;
      return res.statusCode === 201 ? true : uploadLocation(res, 'POST', url);
    }
    if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 404) {
      await discard(res);
      // Refused outright: later pushes of this client (and, remembered, later runs) skip the
      // request — unless a mount was honoured before (a source that does not exist is one refusal).
      if (ctx.learned.crossRepoMount !== true) ctx.learned.crossRepoMount = false;
      return undefined;
    }
    throw await failure(ctx, res, 'POST', { action: 'mount blob', digest: descriptor.digest });
  }

  async function commit(
    loc: string,
    descriptor: Descriptor,
    body: RequestBody | undefined,
    length: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const url = withDigest(loc, descriptor.digest);
    const res = await transport.send({
      method: 'PUT',
      url,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      // A body is a blob transfer: bounded by the idle timeouts and the caller's signal.
      ...(body === undefined ? {} : { body, budget: false }),
      scopes: push,
      signal,
      // The upload session may be gone after a failed PUT: the caller restarts the whole upload.
      retries: 0,
    });
    if (res.statusCode === 201 || res.statusCode === 204 || res.statusCode === 200) {
      await discard(res);
      if (body !== undefined) ctx.learned.monolithicUpload = true;
      return;
    }
    if (res.statusCode === 413 && body !== undefined) ctx.learned.monolithicUpload = false;
    const error = await failure(ctx, res, 'PUT', {
      action: 'push blob',
      digest: descriptor.digest,
      notFound: 'upload',
    });
    const after = parseRetryAfter(res.headers['retry-after']);
    if (after !== undefined) retryAfterOf.set(error, after);
    throw error;
  }

  async function uploadChunked(
    loc: string,
    descriptor: Descriptor,
    source: AsyncIterable<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<void> {
    let offset = 0;
    let previous = 0;
    for await (const chunk of rechunk(source, patchSize(ctx))) {
      signal?.throwIfAborted();
      if (offset + chunk.byteLength > descriptor.size) {
        throw new SizeMismatchError(`blob body is longer than the descriptor's ${descriptor.size} bytes`, {
          digest: descriptor.digest,
        });
      }
      const end = offset + chunk.byteLength - 1;
      const res = await transport.send({
        method: 'PATCH',
        url: loc,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(chunk.byteLength),
          'content-range': `${offset}-${end}`,
        },
        body: chunk,
        budget: false,
        scopes: push,
        signal,
      });
      if (res.statusCode === 202 || res.statusCode === 204) {
        await discard(res);
        loc = uploadLocation(res, 'PATCH', loc);
        offset = end + 1;
        previous = chunk.byteLength;
        continue;
      }
      if (res.statusCode === 416) {
        // A retried PATCH whose first attempt landed: ask the session where it stands.
        await discard(res);
        const status = await transport.send({ method: 'GET', url: loc, scopes: push, signal });
        const range = header(status, 'range');
        await discard(status);
        const have = range ? /(\d+)-(\d+)/.exec(range) : null;
        if (status.statusCode === 204 && have && Number(have[2]) === end) {
          loc = uploadLocation(status, 'GET', loc);
          offset = end + 1;
          continue;
        }
      }
      const error = await failure(ctx, res, 'PATCH', {
        action: 'upload blob chunk',
        digest: descriptor.digest,
        notFound: 'upload',
      });
      if (learnPartSize(res.statusCode, chunk.byteLength, previous)) throw new PartSizeRefused(error);
      throw error;
    }
    if (offset !== descriptor.size) {
      throw new SizeMismatchError(`blob body is ${offset} bytes, the descriptor says ${descriptor.size}`, {
        digest: descriptor.digest,
      });
    }
    await commit(loc, descriptor, undefined, 0, signal);
  }

  /**
   * After a refused `PATCH`: learns the size limit the refusal shows, if any, and says whether
   * the blob should go up again in the new size. 413, or a refusal of a part larger than every
   * registry takes, lowers the largest size; a refused part following a part smaller than S3's
   * minimum (ECR answers 400 there) raises the smallest.
   */
  function learnPartSize(status: number, size: number, previous: number): boolean {
    const { learned } = ctx;
    if (status !== 400 && status !== 413 && status !== 416) return false;
    if (status === 413 || size > SAFE_MAX_PATCH) {
      const max = size > SAFE_MAX_PATCH ? SAFE_MAX_PATCH : Math.max(256 * 1024, Math.floor(size / 2));
      if (learned.maxPatchBytes !== undefined && learned.maxPatchBytes <= max) return false;
      learned.maxPatchBytes = max;
      return true;
    }
    if (previous > 0 && previous < S3_MIN_PART && (learned.minPatchBytes ?? 0) < S3_MIN_PART) {
      learned.minPatchBytes = S3_MIN_PART;
      return true;
    }
    return false;
  }

  async function pushBlob(descriptor: Descriptor, body: BlobBody, options?: PushBlobOptions): Promise<void> {
    checkDescriptor(descriptor, true);
    if (!(body instanceof Uint8Array) && typeof body !== 'function' && !isAsyncIterable(body)) {
      throw new InvalidOptionError(
        'pushBlob body must be a Uint8Array, an AsyncIterable or a function returning one',
      );
    }
    if (body instanceof Uint8Array && options?.digestVerified !== true) {
      // In-memory bytes are checked up front: a wrong digest is a caller bug, not a registry error.
      verifyBytes(body, descriptor);
    }
    const signal = options?.signal;
    const release = await transfers.acquire(signal);
    try {
      let session: string | undefined;
      for (const from of ctx.learned.crossRepoMount === false ? [] : (options?.mountFrom ?? [])) {
        const mounted = await tryMount(descriptor, from, signal);
        if (mounted === true) return;
        if (typeof mounted === 'string') {
          session = mounted;
          break;
        }
      }
      const replayable = isReplayable(body);
      let chunked = descriptor.size > ctx.monolithicUploadMaxBytes || ctx.learned.monolithicUpload === false;
      let restarts = 0;
      for (let attempt = 0; ; attempt++) {
        const loc = session ?? (await startUpload(signal));
        session = undefined;
        try {
          if (chunked) {
            const source =
              body instanceof Uint8Array ? bytesSource(body) : typeof body === 'function' ? body() : body;
            await uploadChunked(loc, descriptor, source, signal);
          } else {
            await commit(loc, descriptor, body, descriptor.size, signal);
          }
          return;
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          if (error instanceof PartSizeRefused) {
            // NOTE: the limit is learned (patchSize follows it): the same bytes again in parts of
            // the new size, at once; the refused session is abandoned (registries expire them).
            if (!replayable || ++restarts > MAX_SIZE_RESTARTS) throw error.refusal;
            attempt--;
            continue;
          }
          if (!chunked && replayable && (error as OciError).statusCode === 413) {
            // NOTE: the registry (or a proxy in front of it) caps request bodies: the same bytes
            // again as chunked PATCHes, at once (413 is no rate limit). The session of the refused
            // PUT is abandoned; registries expire such sessions.
            chunked = true;
            continue;
          }
          const retryAfterMs = retryAfterOf.get(error as OciError);
          const wait = replayable ? transport.policy.delay(attempt, { error, retryAfterMs }) : undefined;
          if (wait === undefined) throw error;
          // The PUT may have landed even though we saw no answer: look before pushing again.
          if (await checker.blobExists(descriptor, { signal }).catch(() => false)) return;
          await sleep(wait, signal);
        }
      }
    } finally {
      release();
    }
  }

  return { pushBlob };
}
