// Reading blobs from a registry: `HEAD` to check, streaming `GET` through the shared verifying
// reader, resumed with `Range` after a dropped connection or an idle-body timeout; a ranged read
// (`FetchBlobOptions.range`) is the same loop over a part of the blob.
import { BlobUnknownError, OciError, RegistryError } from '../errors.js';
import { discard, header, type Response, sleep, wrapNetworkError } from '../internal/transport/index.js';
import type { BlobChecker, BlobFetcher, Descriptor, FetchBlobOptions, RequestOptions } from '../types.js';
import { checkBlobRange, verifyStream } from '../verify.js';
import { blobUrl, checkDescriptor, failure, type RepositoryContext, scopes } from './context.js';

/** The blob-reading capabilities of a repository. */
export function createBlobReader(ctx: RepositoryContext): BlobFetcher & BlobChecker {
  const { transport, transfers, location } = ctx;
  const { pull } = scopes(ctx);

  async function blobExists(
    descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
    options?: RequestOptions,
  ): Promise<boolean> {
    checkDescriptor(descriptor, false);
    const url = blobUrl(ctx, descriptor.digest);
    const res = await transport.send({ method: 'HEAD', url, scopes: pull, signal: options?.signal });
    if (res.statusCode === 200 || res.statusCode === 404) {
      await discard(res);
      return res.statusCode === 200;
    }
    throw await failure(ctx, res, 'HEAD', { action: 'check blob', digest: descriptor.digest });
  }

  /**
   * Opens a `GET` of the blob from byte `from`: the whole blob (`from` 0, `to` undefined), the
   * rest of it (`bytes=from-`, a resume) or bytes `from..to` inclusive (a ranged read). A `206`
   * must name the asked bytes in `Content-Range`; a `200` is the whole blob (the registry ignored
   * `Range`), which the caller skips into.
   */
  async function openBlob(
    descriptor: Descriptor,
    from: number,
    to: number | undefined,
    signal?: AbortSignal,
  ): Promise<Response> {
    const url = blobUrl(ctx, descriptor.digest);
    const headers: Record<string, string> = {};
    const asked = to !== undefined ? `bytes=${from}-${to}` : from > 0 ? `bytes=${from}-` : undefined;
    if (asked !== undefined) headers.range = asked;
    // A blob body is bounded by the idle timeout and the caller's signal, not the request budget.
    // NOTE: the redirect layer resends every header, Range included, to a storage URL (307).
    const res = await transport.send({ method: 'GET', url, headers, scopes: pull, signal, budget: false });
    if (asked !== undefined && (res.statusCode === 200 || res.statusCode === 206)) {
      ctx.learned.rangeRequests = res.statusCode === 206;
    }
    if (res.statusCode === 200) return res;
    if (res.statusCode === 206 && asked !== undefined) {
      await checkContentRange(descriptor, res, from, to);
      return res;
    }
    if (res.statusCode === 404) {
      await discard(res);
      throw new BlobUnknownError(`blob ${descriptor.digest} is not in ${location}`, {
        method: 'GET',
        url: res.url,
        statusCode: 404,
        digest: descriptor.digest,
      });
    }
    throw await failure(ctx, res, 'GET', {
      action: 'fetch blob',
      digest: descriptor.digest,
      notFound: 'blob',
    });
  }

  /**
   * A `206` must be the bytes asked for. A ranged read (`to` given) has no digest to catch wrong
   * bytes, so its `Content-Range` must be there and name exactly `from-to/<size or *>`; a resume
   * of the whole blob only needs the right start when the header is there (the digest checks the
   * rest).
   */
  async function checkContentRange(
    descriptor: Descriptor,
    res: Response,
    from: number,
    to: number | undefined,
  ): Promise<void> {
    const value = header(res, 'content-range');
    const parts = value ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value) : null;
    const ok =
      to === undefined
        ? value === undefined || Number(/bytes\s+(\d+)-/i.exec(value)?.[1] ?? from) === from
        : parts !== null &&
          Number(parts[1]) === from &&
          Number(parts[2]) === to &&
          (parts[3] === '*' || Number(parts[3]) === descriptor.size);
    if (ok) return;
    await discard(res);
    const want = `bytes ${from}-${to ?? ''}${to === undefined ? '' : `/${descriptor.size}`}`;
    throw new RegistryError(
      `registry answered Content-Range ${value === undefined ? '(none)' : JSON.stringify(value)} for ${want} of the blob`,
      { method: 'GET', url: res.url, statusCode: 206, digest: descriptor.digest },
    );
  }

  async function fetchBlob(
    descriptor: Descriptor,
    options?: FetchBlobOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    checkDescriptor(descriptor, true);
    const range = checkBlobRange(options?.range, descriptor);
    const signal = options?.signal;
    // The bytes wanted: [start, end) of the blob; `last` is the inclusive end sent in Range.
    const start = range?.offset ?? 0;
    const end = range ? range.offset + range.length : descriptor.size;
    const last = range ? end - 1 : undefined;
    const release = await transfers.acquire(signal);
    let first: Response;
    try {
      first = await openBlob(descriptor, start, last, signal);
    } catch (error) {
      release();
      throw error;
    }
    let started = false;
    // A caller that drops the iterable without reading it must not keep the slot forever: the
    // body's idle timeout closes it, and the slot goes with it; a signal fired before the first
    // read closes it at once (the verifier then rejects without ever starting the read).
    const onAbort = () => {
      if (!started) first.body.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    first.body.once('close', () => {
      signal?.removeEventListener('abort', onAbort);
      if (!started) release();
    });
    async function* raw(): AsyncGenerator<Uint8Array> {
      started = true;
      let current = first;
      // The next byte of the blob to hand on.
      let position = start;
      let resumes = 0;
      try {
        for (;;) {
          try {
            // A 200 is the whole blob (Range ignored): skip to `position`. Of a ranged read only
            // the range is wanted, so such a body is closed after it (never read to its end); a
            // 206, or the whole blob, goes on to the verifier, which refuses any extra byte.
            let skip = current.statusCode === 200 ? position : 0;
            const stopAt = range !== undefined && current.statusCode === 200 ? end : undefined;
            for await (const piece of current.body) {
              let chunk = piece as Uint8Array;
              if (skip > 0) {
                const drop = Math.min(skip, chunk.byteLength);
                chunk = chunk.subarray(drop);
                skip -= drop;
                if (chunk.byteLength === 0) continue;
              }
              if (stopAt !== undefined && position + chunk.byteLength >= stopAt) {
                chunk = chunk.subarray(0, stopAt - position);
                position += chunk.byteLength;
                if (chunk.byteLength > 0) yield chunk;
                return;
              }
              position += chunk.byteLength;
              yield chunk;
            }
            return;
          } catch (error) {
            if (signal?.aborted) throw signal.reason;
            // NOTE: an OciError here is the verifier's or ours, never transient for a resume.
            const wait = error instanceof OciError ? undefined : transport.policy.delay(resumes, { error });
            if (wait === undefined) throw wrapNetworkError(error, 'GET', current.url);
            // Cut off after the last wanted byte: nothing to resume (the verifier checks the rest).
            if (position >= end) return;
            resumes++;
            current.body.destroy();
            await sleep(wait, signal);
            current = await openBlob(descriptor, position, last, signal);
          }
        }
      } finally {
        if (!current.body.destroyed) current.body.destroy();
        release();
      }
    }
    const where = range ? ` bytes ${start}-${end - 1}` : '';
    return verifyStream(raw(), range ? { digest: descriptor.digest, size: range.length } : descriptor, {
      signal,
      location: `${location}@${descriptor.digest}${where}`,
      // A part's digest cannot be checked: a ranged read checks its length only.
      checkDigest: range === undefined && options?.contentVerified !== true,
    });
  }

  return { blobExists, fetchBlob };
}
