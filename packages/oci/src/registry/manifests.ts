// Manifests in a registry: fetch (verified), resolve (`HEAD`), push byte-exact, tag (a push of
// the same bytes under the tag), delete.
import { isDigest, parseDigest, sha256Digest } from '../digest.js';
import {
  InvalidOptionError,
  ManifestInvalidError,
  ManifestUnknownError,
  OciError,
  RegistryError,
  UnsupportedError,
} from '../errors.js';
import { discard, header, type Response, wrapNetworkError } from '../internal/transport/index.js';
import { MANIFEST_MEDIA_TYPES, MEDIA_TYPE_IMAGE_MANIFEST, parseManifestReference } from '../manifest.js';
import { validateTag } from '../reference.js';
import type {
  Descriptor,
  FetchedManifest,
  ManifestDeleter,
  ManifestFetcher,
  ManifestPusher,
  PushManifestOptions,
  RequestOptions,
  Tagger,
} from '../types.js';
import { verifyBytes } from '../verify.js';
import {
  checkDescriptor,
  contentType,
  failure,
  manifestUrl,
  type RepositoryContext,
  scopes,
} from './context.js';

const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/** The manifest capabilities of a repository, plus `resolveManifest` (`HEAD`). */
export interface RegistryManifests extends ManifestFetcher, ManifestPusher, Tagger, ManifestDeleter {
  resolveManifest(reference: string, options?: RequestOptions): Promise<Descriptor | undefined>;
}

/** Creates the manifest half of a repository. */
export function createManifests(ctx: RepositoryContext): RegistryManifests {
  const { transport, location } = ctx;
  const { pull, push } = scopes(ctx);

  async function readManifest(res: Response): Promise<Uint8Array> {
    const declared = Number(header(res, 'content-length'));
    if (Number.isFinite(declared) && declared > ctx.maxManifestBytes) {
      res.body.destroy();
      throw new ManifestInvalidError(
        `manifest is ${declared} bytes, larger than maxManifestBytes (${ctx.maxManifestBytes})`,
        { method: 'GET', url: res.url, statusCode: res.statusCode },
      );
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Uint8Array).byteLength;
        if (total > ctx.maxManifestBytes) {
          res.body.destroy();
          throw new ManifestInvalidError(
            `manifest is larger than maxManifestBytes (${ctx.maxManifestBytes})`,
            {
              method: 'GET',
              url: res.url,
              statusCode: res.statusCode,
            },
          );
        }
        chunks.push(chunk as Uint8Array);
      }
    } catch (error) {
      throw error instanceof OciError ? error : wrapNetworkError(error, 'GET', res.url);
    }
    return new Uint8Array(Buffer.concat(chunks));
  }

  function mediaTypeOf(res: Response, bytes: Uint8Array | undefined): string {
    const ct = contentType(res);
    if (ct && ct !== 'application/json' && ct !== 'application/octet-stream') return ct;
    if (bytes) {
      try {
        const mt = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: unknown }).mediaType;
        if (typeof mt === 'string' && mt) return mt;
      } catch {
        // fall through
      }
    }
    return ct ?? MEDIA_TYPE_IMAGE_MANIFEST;
  }

  /** `GET`/`HEAD` of a manifest, accepting every manifest type a store hands out. */
  function requestManifest(method: 'GET' | 'HEAD', reference: string, options?: RequestOptions) {
    const url = manifestUrl(ctx, reference);
    const headers = { accept: MANIFEST_ACCEPT };
    return transport.send({ method, url, headers, scopes: pull, signal: options?.signal });
  }

  async function fetchManifest(
    reference: string,
    options?: RequestOptions,
  ): Promise<FetchedManifest | undefined> {
    const ref = parseManifestReference(reference);
    const res = await requestManifest('GET', reference, options);
    if (res.statusCode === 404) {
      await discard(res);
      return undefined;
    }
    if (res.statusCode !== 200) {
      throw await failure(ctx, res, 'GET', { action: 'fetch manifest', notFound: 'manifest' });
    }
    const bytes = await readManifest(res);
    let digest: string;
    if (ref.kind === 'digest') {
      verifyBytes(
        bytes,
        { digest: ref.digest, size: bytes.byteLength },
        { location: `${location}@${reference}` },
      );
      digest = ref.digest;
    } else {
      digest = sha256Digest(bytes);
      const claimed = header(res, 'docker-content-digest');
      if (claimed?.startsWith('sha256:') && claimed !== digest) {
        verifyBytes(
          bytes,
          { digest: claimed, size: bytes.byteLength },
          { location: `${location}:${reference}` },
        );
      }
    }
    return { descriptor: { mediaType: mediaTypeOf(res, bytes), digest, size: bytes.byteLength }, bytes };
  }

  async function resolveManifest(
    reference: string,
    options?: RequestOptions,
  ): Promise<Descriptor | undefined> {
    parseManifestReference(reference);
    const res = await requestManifest('HEAD', reference, options);
    await discard(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) {
      throw await failure(ctx, res, 'HEAD', { action: 'resolve manifest', notFound: 'manifest' });
    }
    const digest = header(res, 'docker-content-digest');
    const size = Number(header(res, 'content-length'));
    const mediaType = contentType(res);
    if (isDigest(digest) && Number.isSafeInteger(size) && mediaType && mediaType !== 'application/json') {
      if (isDigest(reference) && digest !== reference) {
        throw new RegistryError(`registry resolved ${reference} to a different digest ${digest}`, {
          method: 'HEAD',
          url: res.url,
          digest: reference,
        });
      }
      return { mediaType, digest, size };
    }
    // Not every registry sends Docker-Content-Digest on HEAD: fall back to GET.
    return (await fetchManifest(reference, options))?.descriptor;
  }

  async function pushManifest(
    bytes: Uint8Array,
    mediaType: string,
    options?: PushManifestOptions,
  ): Promise<Descriptor> {
    if (!(bytes instanceof Uint8Array))
      throw new InvalidOptionError('pushManifest bytes must be a Uint8Array');
    if (typeof mediaType !== 'string' || !mediaType) {
      throw new InvalidOptionError('pushManifest mediaType must be a non-empty string');
    }
    if (options?.tag !== undefined) validateTag(options.tag);
    const digest = sha256Digest(bytes);
    const url = manifestUrl(ctx, options?.tag ?? digest);
    const res = await transport.send({
      method: 'PUT',
      url,
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: push,
      signal: options?.signal,
    });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 204) {
      throw await failure(ctx, res, 'PUT', { action: 'push manifest', digest });
    }
    await discard(res);
    return { mediaType, digest, size: bytes.byteLength };
  }

  async function tag(descriptor: Descriptor, tagName: string, options?: RequestOptions): Promise<void> {
    validateTag(tagName);
    checkDescriptor(descriptor, false);
    const fetched = await fetchManifest(descriptor.digest, options);
    if (!fetched) {
      throw new ManifestUnknownError(`cannot tag ${descriptor.digest}: manifest is not in ${location}`, {
        digest: descriptor.digest,
      });
    }
    await pushManifest(fetched.bytes, descriptor.mediaType || fetched.descriptor.mediaType, {
      tag: tagName,
      ...(options?.signal ? { signal: options.signal } : {}),
    });
  }

  async function deleteManifest(digest: string, options?: RequestOptions): Promise<void> {
    parseDigest(digest);
    const url = manifestUrl(ctx, digest);
    const res = await transport.send({
      method: 'DELETE',
      url,
      scopes: scopes(ctx).delete,
      signal: options?.signal,
    });
    if (
      res.statusCode === 202 ||
      res.statusCode === 200 ||
      res.statusCode === 204 ||
      res.statusCode === 404
    ) {
      await discard(res);
      return;
    }
    if (res.statusCode === 405) {
      await discard(res);
      throw new UnsupportedError(
        'delete manifest failed: the registry does not allow deleting manifests (HTTP 405 Method Not Allowed)',
        { method: 'DELETE', url, statusCode: 405, digest },
      );
    }
    throw await failure(ctx, res, 'DELETE', { action: 'delete manifest', digest, notFound: 'manifest' });
  }

  return { fetchManifest, resolveManifest, pushManifest, tag, deleteManifest };
}
