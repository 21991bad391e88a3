// Maps a failed registry response to a typed OciError (distribution-spec v1.1.1 error codes).
// What the registry wrote is shown only after known secrets are scrubbed from it.

import { isDigest } from '../digest.js';
import {
  BlobUnknownError,
  BlobUploadInvalidError,
  BlobUploadUnknownError,
  DeniedError,
  DigestInvalidError,
  ManifestBlobUnknownError,
  ManifestInvalidError,
  ManifestUnknownError,
  NameInvalidError,
  NameUnknownError,
  type OciError,
  type OciErrorOptions,
  RegistryError,
  SizeInvalidError,
  TagInvalidError,
  TooManyRequestsError,
  UnauthorizedError,
  UnsupportedError,
} from '../errors.js';
import type { Secret } from '../redact.js';
import { scrubSecrets } from '../redact.js';
import { parseRetryAfter, parseWwwAuthenticate } from './headers.js';
import { discard, type Response } from './transport/index.js';

interface RegistryErrorBody {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
}

const MAX_ERROR_BODY = 64 * 1024;
/** Longest time spent reading an error body. */
const ERROR_BODY_WAIT_MS = 5_000;

async function readErrorBody(res: Response, max: number): Promise<RegistryErrorBody[]> {
  // NOTE: at most `max` bytes are read, then the body is cut: an endless error body must cost
  // neither memory nor time. A trickling one is cut after ERROR_BODY_WAIT_MS (the request budget
  // does not cover the error bodies of blob transfers).
  const chunks: Uint8Array[] = [];
  let total = 0;
  const timer = setTimeout(() => res.body.destroy(), ERROR_BODY_WAIT_MS);
  timer.unref?.();
  try {
    for await (const chunk of res.body) {
      chunks.push(chunk as Uint8Array);
      total += (chunk as Uint8Array).byteLength;
      if (total >= max) {
        res.body.destroy();
        break;
      }
    }
  } catch {
    // Cut or failed: what arrived may still be a whole JSON document.
  } finally {
    clearTimeout(timer);
  }
  if (total === 0) return [];
  try {
    const json = JSON.parse(Buffer.concat(chunks).toString('utf8').slice(0, max)) as {
      errors?: unknown;
    };
    return Array.isArray(json.errors) ? (json.errors as RegistryErrorBody[]) : [];
  } catch {
    return [];
  }
}

function digestsFromDetail(detail: unknown): string[] {
  if (isDigest(detail)) return [detail];
  if (typeof detail === 'object' && detail !== null) {
    const d = detail as Record<string, unknown>;
    for (const key of ['digest', 'Digest', 'blob']) {
      if (isDigest(d[key])) return [d[key] as string];
    }
  }
  if (typeof detail === 'string') {
    return detail.match(/sha256:[a-f0-9]{64}/g) ?? [];
  }
  return [];
}

/** What the failing request was about, to pick the right error for a bare status. */
export interface ErrorContext {
  /** What a 404 means here. */
  notFound?: 'blob' | 'manifest' | 'upload' | 'name';
  digest?: string;
  /** Verb phrase for the message, e.g. `push blob`. */
  action: string;
  /** Secrets to scrub from what the registry wrote (credentials, tokens). */
  secrets?: Iterable<Secret>;
  /**
   * Largest error body read.
   * @default 65536
   */
  maxBodyBytes?: number;
  /** "no credentials were found for HOST (looked in …)", named by a 401 without credentials. */
  noCredentialsHint?: string;
}

/** Builds the typed error for a failed response and consumes its body. */
export async function errorFromResponse(
  res: Response,
  method: string,
  context: ErrorContext,
): Promise<OciError> {
  const errors = method === 'HEAD' ? [] : await readErrorBody(res, context.maxBodyBytes ?? MAX_ERROR_BODY);
  if (method === 'HEAD') await discard(res);
  const first = errors[0];
  const code = typeof first?.code === 'string' ? first.code : undefined;
  const registryMessage = scrubSecrets(
    errors
      .map((e) => (typeof e.message === 'string' ? e.message : typeof e.code === 'string' ? e.code : ''))
      .filter(Boolean)
      .join('; '),
    context.secrets ?? [],
  );
  const options: OciErrorOptions = {
    method,
    url: res.url,
    statusCode: res.statusCode,
    ...(context.digest ? { digest: context.digest } : {}),
    ...(res.warnings.length ? { warnings: res.warnings } : {}),
    ...(code === undefined ? {} : { registryCode: code }),
  };
  const msg = (fallback: string) =>
    `${context.action} failed: ${registryMessage ? `${registryMessage}` : fallback}`;

  if (res.statusCode === 401) {
    const bearer = parseWwwAuthenticate(res.headers['www-authenticate']).find((c) => c.scheme === 'bearer');
    if (bearer?.params.error === 'insufficient_scope' && !res.authenticated) {
      return new UnauthorizedError(
        `${context.action} failed: the registry requires authentication and ${context.noCredentialsHint ?? 'no credentials are configured'}`,
        options,
      );
    }
    if (bearer?.params.error === 'insufficient_scope') {
      // Authenticated, but the account may not do this: a permission problem, not a login one.
      return new DeniedError(
        `${context.action} failed: the credentials lack the required access (insufficient_scope${
          bearer.params.scope ? `, needs ${bearer.params.scope}` : ''
        })`,
        options,
      );
    }
  }
  if (res.statusCode === 401 && !res.authenticated && context.noCredentialsHint) {
    // The fix is to configure credentials: say where we looked, not "check the credentials".
    return new UnauthorizedError(
      `${context.action} failed: the registry requires authentication and ${context.noCredentialsHint}`,
      options,
    );
  }
  switch (code) {
    case 'BLOB_UNKNOWN':
      return new BlobUnknownError(msg('blob unknown to registry'), options);
    case 'BLOB_UPLOAD_INVALID':
      return new BlobUploadInvalidError(msg('blob upload invalid'), options);
    case 'BLOB_UPLOAD_UNKNOWN':
      return new BlobUploadUnknownError(msg('blob upload unknown'), options);
    case 'DIGEST_INVALID':
      return new DigestInvalidError(msg('provided digest did not match uploaded content'), options);
    case 'MANIFEST_BLOB_UNKNOWN': {
      const missing = [
        ...new Set(
          errors
            .filter((e) => e.code === 'MANIFEST_BLOB_UNKNOWN')
            .flatMap((e) => digestsFromDetail(e.detail)),
        ),
      ];
      return new ManifestBlobUnknownError(
        `${context.action} failed: the manifest references blobs the registry does not have${
          missing.length ? `: ${missing.join(', ')}` : ''
        }`,
        { ...options, missingDigests: missing },
      );
    }
    case 'MANIFEST_INVALID':
      return new ManifestInvalidError(msg('manifest invalid'), options);
    case 'MANIFEST_UNKNOWN':
      return new ManifestUnknownError(msg('manifest unknown'), options);
    case 'NAME_INVALID':
      return new NameInvalidError(msg('invalid repository name'), options);
    case 'NAME_UNKNOWN':
      return new NameUnknownError(msg('repository name not known to registry'), options);
    case 'SIZE_INVALID':
      return new SizeInvalidError(msg('content length does not match'), options);
    case 'TAG_INVALID':
      return new TagInvalidError(msg('tag invalid'), options);
    case 'UNAUTHORIZED':
      return new UnauthorizedError(msg('authentication required'), options);
    case 'DENIED':
      return new DeniedError(msg('access denied'), options);
    case 'UNSUPPORTED':
      return new UnsupportedError(msg('operation unsupported'), options);
    case 'TOOMANYREQUESTS':
      return tooMany(res, msg, options);
  }
  switch (res.statusCode) {
    case 401:
      return new UnauthorizedError(msg('authentication failed (check the credentials)'), options);
    case 403:
      return new DeniedError(msg('access denied'), options);
    case 404:
      switch (context.notFound) {
        case 'blob':
          return new BlobUnknownError(msg('blob unknown to registry'), options);
        case 'manifest':
          return new ManifestUnknownError(msg('manifest unknown'), options);
        case 'upload':
          return new BlobUploadUnknownError(msg('blob upload unknown'), options);
        default:
          return new NameUnknownError(msg('not found'), options);
      }
    case 405:
      return new UnsupportedError(
        msg('the registry does not allow this operation (HTTP 405 Method Not Allowed)'),
        options,
      );
    case 429:
      return tooMany(res, msg, options);
  }
  return new RegistryError(msg(`unexpected HTTP ${res.statusCode}`), options);
}

function tooMany(res: Response, msg: (f: string) => string, options: OciErrorOptions): OciError {
  const after = parseRetryAfter(res.headers['retry-after']);
  return new TooManyRequestsError(
    msg(`too many requests${after !== undefined ? ` (Retry-After ${Math.ceil(after / 1000)} s)` : ''}`),
    options,
  );
}
