// Pushing blobs to a registry (distribution-spec v1.1.1 "Pushing blobs"): an optional
// cross-repository mount, then a session (`POST`) finished by one monolithic `PUT` (the default:
// two requests per blob) or, above `monolithicUploadMaxBytes` or after a 413, by chunked `PATCH`es
// of `chunkSize` and a closing `PUT`. A failed upload restarts from a new session while the retry
// policy calls it transient and the body can be replayed. Every session start (and mount) takes a
// slot of the client's push-rate cap, when one is set.

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
import { checkDescriptor, failure, type RepositoryContext, scopes } from './context.js';

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
      return res.statusCode === 201 ? true : uploadLocation(res, 'POST', url);
    }
    if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 404) {
      await discard(res);
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
      return;
    }
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
    for await (const chunk of rechunk(source, ctx.chunkSize)) {
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
      throw await failure(ctx, res, 'PATCH', {
        action: 'upload blob chunk',
        digest: descriptor.digest,
        notFound: 'upload',
      });
    }
    if (offset !== descriptor.size) {
      throw new SizeMismatchError(`blob body is ${offset} bytes, the descriptor says ${descriptor.size}`, {
        digest: descriptor.digest,
      });
    }
    await commit(loc, descriptor, undefined, 0, signal);
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
      for (const from of options?.mountFrom ?? []) {
        const mounted = await tryMount(descriptor, from, signal);
        if (mounted === true) return;
        if (typeof mounted === 'string') {
          session = mounted;
          break;
        }
      }
      const replayable = isReplayable(body);
      let chunked = descriptor.size > ctx.monolithicUploadMaxBytes;
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
