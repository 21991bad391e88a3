/**
 * Typed errors of `@task-cache/oci` (undici style: one base class, a literal `code`, a default
 * message, structured fields, always a `cause` when there is one).
 *
 * Registry failures keep the OCI error codes of distribution-spec v1.1.1
 * (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#error-codes).
 * URLs are redacted on construction: user-info and credential-like query values never
 * reach a message or a field.
 */
import { redactUrl } from './internal/redact.js';

/** Every `code` an {@link OciError} can carry. */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'MANIFEST_UNKNOWN'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'NAME_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'SIZE_INVALID'
  | 'NAME_INVALID'
  | 'TAG_INVALID'
  | 'DENIED'
  | 'UNAUTHORIZED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'INVALID_REFERENCE'
  | 'INVALID_OPTION'
  | 'INSECURE_REDIRECT'
  | 'TIMEOUT'
  | 'NETWORK'
  | 'REGISTRY_ERROR'
  // Image-layout store (src/layout): corrupt index.json / oci-layout, unsupported layout version, index lock.
  | 'LAYOUT_INVALID'
  | 'LAYOUT_VERSION_UNSUPPORTED'
  | 'LOCK_TIMEOUT';

/** Structured fields an {@link OciError} may carry. */
export interface OciErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** HTTP status of the failing response. */
  statusCode?: number;
  /** HTTP method of the failing request. */
  method?: string;
  /** URL of the failing request (redacted on construction). */
  url?: string;
  /** Digest the failure is about. */
  digest?: string;
  /** Blobs a manifest references that the registry does not have (`MANIFEST_BLOB_UNKNOWN`). */
  missingDigests?: string[];
  /** `Warning` header texts the registry sent with the failing response. */
  warnings?: string[];
}

/** Base class of every error thrown by `@task-cache/oci`. Check `code`, or `instanceof`. */
export class OciError extends Error {
  override name = 'OciError';
  /** Literal error code (OCI registry code where the registry gave one). */
  readonly code: OciErrorCode;
  /** HTTP status of the failing response, if any. */
  readonly statusCode: number | undefined;
  /** HTTP method of the failing request, if any. */
  readonly method: string | undefined;
  /** URL of the failing request with credentials removed, if any. */
  readonly url: string | undefined;
  /** Digest the failure is about, if any. */
  readonly digest: string | undefined;
  /** Digests a manifest references that the registry lacks (`MANIFEST_BLOB_UNKNOWN`). */
  readonly missingDigests: string[] | undefined;
  /** `Warning` header texts sent with the failing response. */
  readonly warnings: string[] | undefined;

  constructor(code: OciErrorCode, message: string, options: OciErrorOptions = {}) {
    const url = options.url === undefined ? undefined : redactUrl(options.url);
    const where =
      options.method !== undefined || url !== undefined || options.statusCode !== undefined
        ? ` (${[
            options.method,
            url,
            options.statusCode === undefined ? undefined : `HTTP ${options.statusCode}`,
          ]
            .filter((part) => part !== undefined)
            .join(' ')})`
        : '';
    super(`${message}${where}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.statusCode = options.statusCode;
    this.method = options.method;
    this.url = url;
    this.digest = options.digest;
    this.missingDigests = options.missingDigests;
    this.warnings = options.warnings;
  }
}

/** A blob is not in the repository (`BLOB_UNKNOWN`). */
export class BlobUnknownError extends OciError {
  override name = 'BlobUnknownError';
  declare readonly code: 'BLOB_UNKNOWN';
  constructor(message = 'blob unknown to registry', options?: OciErrorOptions) {
    super('BLOB_UNKNOWN', message, options);
  }
}

/** The upload session is invalid (`BLOB_UPLOAD_INVALID`). */
export class BlobUploadInvalidError extends OciError {
  override name = 'BlobUploadInvalidError';
  declare readonly code: 'BLOB_UPLOAD_INVALID';
  constructor(message = 'blob upload invalid', options?: OciErrorOptions) {
    super('BLOB_UPLOAD_INVALID', message, options);
  }
}

/** The upload session is unknown to the registry (`BLOB_UPLOAD_UNKNOWN`). */
export class BlobUploadUnknownError extends OciError {
  override name = 'BlobUploadUnknownError';
  declare readonly code: 'BLOB_UPLOAD_UNKNOWN';
  constructor(message = 'blob upload unknown to registry', options?: OciErrorOptions) {
    super('BLOB_UPLOAD_UNKNOWN', message, options);
  }
}

/** A manifest is not in the repository (`MANIFEST_UNKNOWN`). Fetches return `undefined` instead. */
export class ManifestUnknownError extends OciError {
  override name = 'ManifestUnknownError';
  declare readonly code: 'MANIFEST_UNKNOWN';
  constructor(message = 'manifest unknown', options?: OciErrorOptions) {
    super('MANIFEST_UNKNOWN', message, options);
  }
}

/** A pushed manifest references blobs the registry lacks; see `missingDigests`. */
export class ManifestBlobUnknownError extends OciError {
  override name = 'ManifestBlobUnknownError';
  declare readonly code: 'MANIFEST_BLOB_UNKNOWN';
  constructor(message = 'manifest references a blob unknown to the registry', options?: OciErrorOptions) {
    super('MANIFEST_BLOB_UNKNOWN', message, options);
  }
}

/** A manifest is malformed or was refused (`MANIFEST_INVALID`). */
export class ManifestInvalidError extends OciError {
  override name = 'ManifestInvalidError';
  declare readonly code: 'MANIFEST_INVALID';
  constructor(message = 'manifest invalid', options?: OciErrorOptions) {
    super('MANIFEST_INVALID', message, options);
  }
}

/** The repository is unknown to the registry (`NAME_UNKNOWN`). */
export class NameUnknownError extends OciError {
  override name = 'NameUnknownError';
  declare readonly code: 'NAME_UNKNOWN';
  constructor(message = 'repository name not known to registry', options?: OciErrorOptions) {
    super('NAME_UNKNOWN', message, options);
  }
}

/** A digest string is malformed or uses an unsupported algorithm (`DIGEST_INVALID`). */
export class DigestInvalidError extends OciError {
  override name = 'DigestInvalidError';
  declare readonly code: 'DIGEST_INVALID';
  constructor(message = 'digest invalid', options?: OciErrorOptions) {
    super('DIGEST_INVALID', message, options);
  }
}

/** A size is invalid (negative, not an integer, or refused by the registry) (`SIZE_INVALID`). */
export class SizeInvalidError extends OciError {
  override name = 'SizeInvalidError';
  declare readonly code: 'SIZE_INVALID';
  constructor(message = 'size invalid', options?: OciErrorOptions) {
    super('SIZE_INVALID', message, options);
  }
}

/** A repository name breaks the distribution-spec grammar (`NAME_INVALID`). */
export class NameInvalidError extends OciError {
  override name = 'NameInvalidError';
  declare readonly code: 'NAME_INVALID';
  constructor(message = 'repository name invalid', options?: OciErrorOptions) {
    super('NAME_INVALID', message, options);
  }
}

/** A tag breaks `^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$` (`TAG_INVALID`). */
export class TagInvalidError extends OciError {
  override name = 'TagInvalidError';
  declare readonly code: 'TAG_INVALID';
  constructor(message = 'tag invalid', options?: OciErrorOptions) {
    super('TAG_INVALID', message, options);
  }
}

/** The registry refused access to the resource (HTTP 403, `DENIED`). */
export class DeniedError extends OciError {
  override name = 'DeniedError';
  declare readonly code: 'DENIED';
  constructor(message = 'requested access to the resource is denied', options?: OciErrorOptions) {
    super('DENIED', message, options);
  }
}

/** Authentication failed or is required (HTTP 401, `UNAUTHORIZED`). */
export class UnauthorizedError extends OciError {
  override name = 'UnauthorizedError';
  declare readonly code: 'UNAUTHORIZED';
  constructor(message = 'authentication required', options?: OciErrorOptions) {
    super('UNAUTHORIZED', message, options);
  }
}

/** The registry does not support the operation (e.g. HTTP 405 on delete, `UNSUPPORTED`). */
export class UnsupportedError extends OciError {
  override name = 'UnsupportedError';
  declare readonly code: 'UNSUPPORTED';
  constructor(message = 'the operation is unsupported', options?: OciErrorOptions) {
    super('UNSUPPORTED', message, options);
  }
}

/** The registry rate-limited the client and retries ran out (HTTP 429, `TOOMANYREQUESTS`). */
export class TooManyRequestsError extends OciError {
  override name = 'TooManyRequestsError';
  declare readonly code: 'TOOMANYREQUESTS';
  constructor(message = 'too many requests', options?: OciErrorOptions) {
    super('TOOMANYREQUESTS', message, options);
  }
}

/** Bytes did not hash to the expected digest; they were not handed on. */
export class DigestMismatchError extends OciError {
  override name = 'DigestMismatchError';
  declare readonly code: 'DIGEST_MISMATCH';
  constructor(message = 'content digest mismatch', options?: OciErrorOptions) {
    super('DIGEST_MISMATCH', message, options);
  }
}

/** Content was longer or shorter than its descriptor says; it was not handed on. */
export class SizeMismatchError extends OciError {
  override name = 'SizeMismatchError';
  declare readonly code: 'SIZE_MISMATCH';
  constructor(message = 'content size mismatch', options?: OciErrorOptions) {
    super('SIZE_MISMATCH', message, options);
  }
}

/** An `oci://` reference is malformed; thrown before any request. */
export class InvalidReferenceError extends OciError {
  override name = 'InvalidReferenceError';
  declare readonly code: 'INVALID_REFERENCE';
  constructor(message = 'invalid OCI reference', options?: OciErrorOptions) {
    super('INVALID_REFERENCE', message, options);
  }
}

/** An option has an invalid value; the message names the option. */
export class InvalidOptionError extends OciError {
  override name = 'InvalidOptionError';
  declare readonly code: 'INVALID_OPTION';
  constructor(message = 'invalid option', options?: OciErrorOptions) {
    super('INVALID_OPTION', message, options);
  }
}

/** A redirect would have downgraded HTTPS to HTTP; it was refused. */
export class InsecureRedirectError extends OciError {
  override name = 'InsecureRedirectError';
  declare readonly code: 'INSECURE_REDIRECT';
  constructor(message = 'refused a redirect from HTTPS to HTTP', options?: OciErrorOptions) {
    super('INSECURE_REDIRECT', message, options);
  }
}

/** A connect or idle-body timeout expired. */
export class OciTimeoutError extends OciError {
  override name = 'OciTimeoutError';
  declare readonly code: 'TIMEOUT';
  constructor(message = 'request timed out', options?: OciErrorOptions) {
    super('TIMEOUT', message, options);
  }
}

/** A network failure (connection refused or reset, TLS failure) after retries ran out. */
export class NetworkError extends OciError {
  override name = 'NetworkError';
  declare readonly code: 'NETWORK';
  constructor(message = 'network error', options?: OciErrorOptions) {
    super('NETWORK', message, options);
  }
}

/** Any other registry failure (unexpected status, 5xx after retries). */
export class RegistryError extends OciError {
  override name = 'RegistryError';
  declare readonly code: 'REGISTRY_ERROR';
  constructor(message = 'registry error', options?: OciErrorOptions) {
    super('REGISTRY_ERROR', message, options);
  }
}
