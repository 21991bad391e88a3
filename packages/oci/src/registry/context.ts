// What every part of a registry repository (blobs, uploads, manifests, tags) shares: the
// transport, the transfer slots, the repository's URLs and token scopes, and how a failed
// response becomes a typed error.
import { parseDigest } from '../digest.js';
import { type OciError, SizeInvalidError } from '../errors.js';
import type { PushRateLimiter } from '../internal/push-rate.js';
import { type ErrorContext, errorFromResponse } from '../internal/response-error.js';
import type { Semaphore } from '../internal/semaphore.js';
import { header, type Response, type Transport } from '../internal/transport/index.js';
import type { Descriptor, RegistryCapabilities } from '../types.js';

/** Settings and shared state of one repository handle. */
export interface RepositoryContext {
  transport: Transport;
  /** Bounds concurrent blob transfers of the whole client. */
  transfers: Semaphore;
  /** Repository name. */
  name: string;
  /** `host[:port]`. */
  registry: string;
  /** `https://host[:port]` or `http://…`. */
  origin: string;
  /** `oci://registry/name` (no credentials), for messages. */
  location: string;
  /** `PATCH` body size of a chunked upload. */
  chunkSize: number;
  /** Blobs up to this size go up in one `PUT`. */
  monolithicUploadMaxBytes: number;
  /** Caps the blob pushes of the whole client per minute, when configured. */
  pushRate: PushRateLimiter | undefined;
  maxManifestBytes: number;
  tagPageSize: number;
  /** Largest error body read. */
  maxErrorBodyBytes: number;
  /** Most tag-list pages read. */
  maxTagPages: number;
  /**
   * What the registry's answers showed (shared by every repository of the client, seeded from
   * what core remembered): upload form, `PATCH` limits, mounts. Written as answers come.
   */
  learned: RegistryCapabilities;
  /** CA certificates of the client's own Agent (for the HTTP/2 probe), when it made one. */
  tlsCa: string[] | undefined;
}

/**
 * The largest part size a registry may ask for (`OCI-Chunk-Min-Length`, a remembered limit): each
 * part is buffered (to be retried), so a larger demand is ignored rather than obeyed.
 */
export const MAX_PATCH_BYTES = 32 * 1024 * 1024;

/**
 * Whether a remembered `PATCH` part bound may be trusted: an integer from 64 KiB to
 * {@link MAX_PATCH_BYTES} (a hand-edited or stale record cannot set a nonsense limit).
 */
export function isPartBound(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 64 * 1024 && v <= MAX_PATCH_BYTES;
}

/**
 * The `PATCH` body size of a chunked upload: the configured `chunkSize` within what the registry
 * showed it takes (`maxPatchBytes` after a refused larger body, `minPatchBytes` from its
 * `OCI-Chunk-Min-Length` header or a refused smaller part).
 */
export function patchSize(ctx: RepositoryContext): number {
  let size = ctx.chunkSize;
  const { maxPatchBytes, minPatchBytes } = ctx.learned;
  if (maxPatchBytes !== undefined && size > maxPatchBytes) size = maxPatchBytes;
  if (minPatchBytes !== undefined && size < minPatchBytes) size = minPatchBytes;
  return size;
}

/** Token scopes of a repository. */
export function scopes(ctx: RepositoryContext) {
  return {
    pull: [`repository:${ctx.name}:pull`],
    push: [`repository:${ctx.name}:pull,push`],
    delete: [`repository:${ctx.name}:delete`],
  };
}

/** `…/v2/<name>/blobs/<digest>`. */
export const blobUrl = (ctx: RepositoryContext, digest: string) =>
  `${ctx.origin}/v2/${ctx.name}/blobs/${digest}`;

/** `…/v2/<name>/manifests/<reference>`. */
export const manifestUrl = (ctx: RepositoryContext, reference: string) =>
  `${ctx.origin}/v2/${ctx.name}/manifests/${reference}`;

/** The typed error for a failed response (consumes its body; what the registry wrote is scrubbed). */
export function failure(
  ctx: RepositoryContext,
  res: Response,
  method: string,
  context: Omit<ErrorContext, 'secrets' | 'maxBodyBytes' | 'noCredentialsHint'>,
): Promise<OciError> {
  return errorFromResponse(res, method, {
    ...context,
    secrets: ctx.transport.secrets(),
    maxBodyBytes: ctx.maxErrorBodyBytes,
    noCredentialsHint: ctx.transport.noCredentialsHint(),
  });
}

/** Validates a caller's descriptor before any request. */
export function checkDescriptor(
  descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
  needSize: boolean,
) {
  parseDigest(descriptor.digest);
  if (needSize || descriptor.size !== undefined) {
    if (!Number.isSafeInteger(descriptor.size) || (descriptor.size as number) < 0) {
      throw new SizeInvalidError(
        `descriptor size must be a non-negative integer, got ${String(descriptor.size)}`,
        {
          digest: descriptor.digest,
        },
      );
    }
  }
}

/** The media type of a response, without parameters. */
export function contentType(res: Response): string | undefined {
  return header(res, 'content-type')?.split(';')[0]?.trim() || undefined;
}
