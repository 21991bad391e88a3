// Capability probing (issue 17): what a registry supports that task-cache uses, read from its
// answers to reads (a Range GET, the referrers API, a TLS handshake offering HTTP/2) and from the
// answers a save got anyway (upload form, PATCH limits, mounts: `ctx.learned`) — never an extra
// write, never a host name. Core remembers the result per registry in its state dir with an
// expiry and seeds the next run's client with it (`assumeCapabilities`).
import { connect } from 'node:tls';
import { discard, header } from '../internal/transport/index.js';
import type { Descriptor, RegistryCapabilities, RequestOptions } from '../types.js';
import { blobUrl, isPartBound, type RepositoryContext, scopes } from './context.js';

/** sha256 of zero bytes: a digest to ask the referrers API about without naming real content. */
const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Options of {@link probeCapabilities}. */
export interface ProbeOptions extends RequestOptions {
  /** A blob known to be in the repository (e.g. an entry's config), to ask for a `Range` of it. */
  blob?: Pick<Descriptor, 'digest' | 'size'>;
}

/**
 * Seeds `learned` with remembered capabilities: only the fields the upload path uses, each
 * checked (a hand-edited or stale state file cannot set a nonsense limit). Answers seen in this
 * run win over remembered ones.
 */
export function assumeCapabilities(learned: RegistryCapabilities, remembered: RegistryCapabilities): void {
  if (typeof remembered !== 'object' || remembered === null) return;
  const bool = (v: unknown) => typeof v === 'boolean';
  if (learned.monolithicUpload === undefined && bool(remembered.monolithicUpload))
    learned.monolithicUpload = remembered.monolithicUpload;
  if (learned.crossRepoMount === undefined && bool(remembered.crossRepoMount))
    learned.crossRepoMount = remembered.crossRepoMount;
  if (learned.maxPatchBytes === undefined && isPartBound(remembered.maxPatchBytes))
    learned.maxPatchBytes = remembered.maxPatchBytes;
  if (learned.minPatchBytes === undefined && isPartBound(remembered.minPatchBytes))
    learned.minPatchBytes = remembered.minPatchBytes;
}

/**
 * Whether a TLS registry offers HTTP/2: one TLS handshake offering `h2` and `http/1.1` by ALPN,
 * nothing sent over it. `undefined` for plain HTTP or when the handshake fails.
 */
async function offersHttp2(
  ctx: RepositoryContext,
  signal: AbortSignal | undefined,
): Promise<boolean | undefined> {
  const url = new URL(ctx.origin);
  if (url.protocol !== 'https:') return undefined;
  signal?.throwIfAborted();
  return new Promise((resolve) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port || 443),
      servername: /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname,
      ALPNProtocols: ['h2', 'http/1.1'],
      ...(ctx.tlsCa ? { ca: ctx.tlsCa } : {}),
      timeout: 5_000,
    });
    const done = (value: boolean | undefined) => {
      socket.destroy();
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = () => done(undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('secureConnect', () => done(socket.alpnProtocol === 'h2'));
    socket.once('error', () => done(undefined));
    socket.once('timeout', () => done(undefined));
  });
}

/**
 * Probes the repository's registry: `Range` on blob `GET` (a `bytes=0-0` of `options.blob`:
 * `206` yes, `200` no), the referrers API (`GET /v2/<name>/referrers/<digest>`: `200` with an
 * image index yes, `404` no) and HTTP/2 by ALPN on a TLS registry; merged with what this
 * client's answers showed (`observedCapabilities`). A capability whose answer says nothing (an
 * error, no blob to ask about) is left out. Never throws for the registry's answers; an abort
 * rejects.
 */
export async function probeCapabilities(
  ctx: RepositoryContext,
  options: ProbeOptions = {},
): Promise<RegistryCapabilities> {
  const { transport } = ctx;
  const { pull } = scopes(ctx);
  const signal = options.signal;
  const out: RegistryCapabilities = { ...ctx.learned };
  const http2 = await offersHttp2(ctx, signal);
  signal?.throwIfAborted();
  if (http2 !== undefined) out.http2 = http2;
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
