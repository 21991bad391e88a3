// Reading blobs from a registry: `HEAD` to check, streaming `GET` through the shared verifying
// reader, resumed with `Range` after a dropped connection or an idle-body timeout.
import { BlobUnknownError, OciError, RegistryError } from '../errors.js';
import { discard, header, type Response, sleep, wrapNetworkError } from '../internal/transport/index.js';
import type { BlobChecker, BlobFetcher, Descriptor, FetchBlobOptions, RequestOptions } from '../types.js';
import { verifyStream } from '../verify.js';
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

  async function openBlob(descriptor: Descriptor, offset: number, signal?: AbortSignal): Promise<Response> {
    const url = blobUrl(ctx, descriptor.digest);
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    // A blob body is bounded by the idle timeout and the caller's signal, not the request budget.
    const res = await transport.send({ method: 'GET', url, headers, scopes: pull, signal, budget: false });
    if (res.statusCode === 200 || (res.statusCode === 206 && offset > 0)) return res;
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

  async function fetchBlob(
    descriptor: Descriptor,
    options?: FetchBlobOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    checkDescriptor(descriptor, true);
    const signal = options?.signal;
    const release = await transfers.acquire(signal);
    let first: Response;
    try {
      first = await openBlob(descriptor, 0, signal);
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
      let offset = 0;
      let resumes = 0;
      try {
        for (;;) {
          try {
            let skip = current.statusCode === 200 ? offset : 0;
            for await (const piece of current.body) {
              let chunk = piece as Uint8Array;
              if (skip > 0) {
                // The registry ignored Range and sent the blob from the start.
                const drop = Math.min(skip, chunk.byteLength);
                chunk = chunk.subarray(drop);
                skip -= drop;
                if (chunk.byteLength === 0) continue;
              }
              offset += chunk.byteLength;
              yield chunk;
            }
            return;
          } catch (error) {
            if (signal?.aborted) throw signal.reason;
            // NOTE: an OciError here is the verifier's or ours, never transient for a resume.
            const wait = error instanceof OciError ? undefined : transport.policy.delay(resumes, { error });
            if (wait === undefined) throw wrapNetworkError(error, 'GET', current.url);
            resumes++;
            current.body.destroy();
            await sleep(wait, signal);
            current = await openBlob(descriptor, offset, signal);
            if (current.statusCode === 206) {
              const range = header(current, 'content-range');
              const start = range ? /bytes\s+(\d+)-/.exec(range)?.[1] : undefined;
              if (start !== undefined && Number(start) !== offset) {
                current.body.destroy();
                throw new RegistryError(`registry resumed blob at byte ${start}, asked for ${offset}`, {
                  method: 'GET',
                  url: current.url,
                  statusCode: 206,
                  digest: descriptor.digest,
                });
              }
            }
          }
        }
      } finally {
        if (!current.body.destroyed) current.body.destroy();
        release();
      }
    }
    return verifyStream(raw(), descriptor, {
      signal,
      location: `${location}@${descriptor.digest}`,
      checkDigest: options?.contentVerified !== true,
    });
  }

  return { blobExists, fetchBlob };
}
