// Capability probing (issue 17): what a registry supports that task-cache uses, read from its
// answers to reads only — never a write, never a host name. Core remembers the result per
// registry in its state dir with an expiry.
import { discard, header } from '../internal/transport/index.js';
import type { Descriptor, RegistryCapabilities, RequestOptions } from '../types.js';
import { blobUrl, type RepositoryContext, scopes } from './context.js';

/** sha256 of zero bytes: a digest to ask the referrers API about without naming real content. */
const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Options of {@link probeCapabilities}. */
export interface ProbeOptions extends RequestOptions {
  /** A blob known to be in the repository (e.g. an entry's config), to ask for a `Range` of it. */
  blob?: Pick<Descriptor, 'digest' | 'size'>;
}

/**
 * Probes the repository's registry: `Range` on blob `GET` (a `bytes=0-0` of `options.blob`:
 * `206` yes, `200` no) and the referrers API (`GET /v2/<name>/referrers/<digest>`: `200` with an
 * image index yes, `404` no). A capability whose answer says nothing (an error, no blob to ask
 * about) is left out. Never throws for the registry's answers; an abort rejects.
 */
export async function probeCapabilities(
  ctx: RepositoryContext,
  options: ProbeOptions = {},
): Promise<RegistryCapabilities> {
  const { transport } = ctx;
  const { pull } = scopes(ctx);
  const signal = options.signal;
  const out: RegistryCapabilities = {};
  try {
    const res = await transport.send({
      method: 'GET',
      url: `${ctx.origin}/v2/${ctx.name}/referrers/${options.blob?.digest ?? EMPTY_DIGEST}`,
      headers: { accept: 'application/vnd.oci.image.index.v1+json' },
      scopes: pull,
      signal,
    });
    await discard(res);
    const type = header(res, 'content-type')?.split(';')[0]?.trim();
    if (res.statusCode === 200 && type === 'application/vnd.oci.image.index.v1+json') out.referrers = true;
    else if (res.statusCode === 404 || res.statusCode === 405) out.referrers = false;
  } catch (error) {
    signal?.throwIfAborted();
    void error;
  }
  if (options.blob !== undefined && options.blob.size > 1) {
    try {
      const res = await transport.send({
        method: 'GET',
        url: blobUrl(ctx, options.blob.digest),
        headers: { range: 'bytes=0-0' },
        scopes: pull,
        signal,
      });
      await discard(res);
      if (res.statusCode === 206) out.rangeRequests = true;
      else if (res.statusCode === 200) out.rangeRequests = false;
    } catch (error) {
      signal?.throwIfAborted();
      void error;
    }
  }
  return out;
}
