/**
 * The typed errors of `@task-cache/oci`, all in this one module (undici style: one base class, a
 * `code` unique per class and prefixed `OCI_ERR_`, a default message, structured fields, always a
 * `cause` when there is one). Switch on `code` or use `instanceof`; never on a message.
 *
 * When a failure corresponds to a distribution-spec v1.1.1 error code
 * (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#error-codes) it is kept
 * in `registryCode`: the code the registry sent, or the code of the class when the store is not a
 * registry (a layout's missing blob is `BlobUnknownError` with `registryCode` `BLOB_UNKNOWN` too).
 * URLs are redacted on construction: user-info and credential-like query values never reach a
 * message or a field.
 */
import { redactUrl } from './redact.js';

/** Every `code` an {@link OciError} can carry: one per class. */
export type OciErrorCode =
  | 'OCI_ERR_BLOB_UNKNOWN'
  | 'OCI_ERR_BLOB_UPLOAD_INVALID'
  | 'OCI_ERR_BLOB_UPLOAD_UNKNOWN'
  | 'OCI_ERR_MANIFEST_UNKNOWN'
  | 'OCI_ERR_MANIFEST_BLOB_UNKNOWN'
  | 'OCI_ERR_MANIFEST_INVALID'
  | 'OCI_ERR_NAME_UNKNOWN'
  | 'OCI_ERR_DIGEST_INVALID'
  | 'OCI_ERR_SIZE_INVALID'
  | 'OCI_ERR_NAME_INVALID'
  | 'OCI_ERR_TAG_INVALID'
  | 'OCI_ERR_DENIED'
  | 'OCI_ERR_UNAUTHORIZED'
  | 'OCI_ERR_UNSUPPORTED'
  | 'OCI_ERR_TOO_MANY_REQUESTS'
  | 'OCI_ERR_DIGEST_MISMATCH'
  | 'OCI_ERR_SIZE_MISMATCH'
  | 'OCI_ERR_INVALID_REFERENCE'
  | 'OCI_ERR_INVALID_OPTION'
  | 'OCI_ERR_INSECURE_REDIRECT'
  | 'OCI_ERR_TIMEOUT'
  | 'OCI_ERR_NETWORK'
  | 'OCI_ERR_REGISTRY'
  | 'OCI_ERR_STORE_LIMIT'
  | 'OCI_ERR_LAYOUT_INVALID'
  | 'OCI_ERR_LAYOUT_VERSION_UNSUPPORTED'
  | 'OCI_ERR_LOCK_TIMEOUT';

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
  /** Blobs a manifest references that the store does not have (`OCI_ERR_MANIFEST_BLOB_UNKNOWN`). */
  missingDigests?: string[];
  /** `Warning` header texts the registry sent with the failing response. */
  warnings?: string[];
  /**
   * The distribution-spec error code the registry sent (`BLOB_UNKNOWN`, `DENIED`, …).
   * @default the class's own spec code, if it has one
   */
  registryCode?: string;
}

/** Base class of every error thrown by `@task-cache/oci`. Check `code`, or `instanceof`. */
export class OciError extends Error {
  override name = 'OciError';
  /** Literal error code, unique per class (`OCI_ERR_*`). */
  readonly code: OciErrorCode;
  /** The distribution-spec error code (`BLOB_UNKNOWN`, …) the failure corresponds to, if any. */
  readonly registryCode: string | undefined;
  /** HTTP status of the failing response, if any. */
  readonly statusCode: number | undefined;
  /** HTTP method of the failing request, if any. */
  readonly method: string | undefined;
  /** URL of the failing request with credentials removed, if any. */
  readonly url: string | undefined;
  /** Digest the failure is about, if any. */
  readonly digest: string | undefined;
  /** Digests a manifest references that the store lacks (`OCI_ERR_MANIFEST_BLOB_UNKNOWN`). */
  readonly missingDigests: string[] | undefined;
  /** `Warning` header texts sent with the failing response. */
  readonly warnings: string[] | undefined;

  constructor(code: OciErrorCode, message: string, options: OciErrorOptions = {}, registryCode?: string) {
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
    this.registryCode = options.registryCode ?? registryCode;
    this.statusCode = options.statusCode;
    this.method = options.method;
    this.url = url;
    this.digest = options.digest;
    this.missingDigests = options.missingDigests;
    this.warnings = options.warnings;
  }
}

/** A blob is not in the store (registry code `BLOB_UNKNOWN`). */
export class BlobUnknownError extends OciError {
  override name = 'BlobUnknownError';
  declare readonly code: 'OCI_ERR_BLOB_UNKNOWN';
  constructor(message = 'blob unknown to registry', options?: OciErrorOptions) {
    super('OCI_ERR_BLOB_UNKNOWN', message, options, 'BLOB_UNKNOWN');
  }
}

/** The upload session is invalid (registry code `BLOB_UPLOAD_INVALID`). */
export class BlobUploadInvalidError extends OciError {
  override name = 'BlobUploadInvalidError';
  declare readonly code: 'OCI_ERR_BLOB_UPLOAD_INVALID';
  constructor(message = 'blob upload invalid', options?: OciErrorOptions) {
    super('OCI_ERR_BLOB_UPLOAD_INVALID', message, options, 'BLOB_UPLOAD_INVALID');
  }
}

/** The upload session is unknown to the registry (registry code `BLOB_UPLOAD_UNKNOWN`). */
export class BlobUploadUnknownError extends OciError {
  override name = 'BlobUploadUnknownError';
  declare readonly code: 'OCI_ERR_BLOB_UPLOAD_UNKNOWN';
  constructor(message = 'blob upload unknown to registry', options?: OciErrorOptions) {
    super('OCI_ERR_BLOB_UPLOAD_UNKNOWN', message, options, 'BLOB_UPLOAD_UNKNOWN');
  }
}

/** A manifest is not in the store (registry code `MANIFEST_UNKNOWN`): tagging or deleting one that is not there. Fetches return `undefined` instead. */
export class ManifestUnknownError extends OciError {
  override name = 'ManifestUnknownError';
  declare readonly code: 'OCI_ERR_MANIFEST_UNKNOWN';
  constructor(message = 'manifest unknown', options?: OciErrorOptions) {
    super('OCI_ERR_MANIFEST_UNKNOWN', message, options, 'MANIFEST_UNKNOWN');
  }
}

/** A pushed manifest references blobs the store lacks; `missingDigests` lists them (registry code `MANIFEST_BLOB_UNKNOWN`). */
export class ManifestBlobUnknownError extends OciError {
  override name = 'ManifestBlobUnknownError';
  declare readonly code: 'OCI_ERR_MANIFEST_BLOB_UNKNOWN';
  constructor(message = 'manifest references a blob unknown to the registry', options?: OciErrorOptions) {
    super('OCI_ERR_MANIFEST_BLOB_UNKNOWN', message, options, 'MANIFEST_BLOB_UNKNOWN');
  }
}

/** A manifest is malformed or was refused (registry code `MANIFEST_INVALID`). */
export class ManifestInvalidError extends OciError {
  override name = 'ManifestInvalidError';
  declare readonly code: 'OCI_ERR_MANIFEST_INVALID';
  constructor(message = 'manifest invalid', options?: OciErrorOptions) {
    super('OCI_ERR_MANIFEST_INVALID', message, options, 'MANIFEST_INVALID');
  }
}

/** The repository is unknown to the registry (registry code `NAME_UNKNOWN`). */
export class NameUnknownError extends OciError {
  override name = 'NameUnknownError';
  declare readonly code: 'OCI_ERR_NAME_UNKNOWN';
  constructor(message = 'repository name not known to registry', options?: OciErrorOptions) {
    super('OCI_ERR_NAME_UNKNOWN', message, options, 'NAME_UNKNOWN');
  }
}

/** A digest string is malformed or uses an unsupported algorithm, or the registry refused an upload's digest (registry code `DIGEST_INVALID`). */
export class DigestInvalidError extends OciError {
  override name = 'DigestInvalidError';
  declare readonly code: 'OCI_ERR_DIGEST_INVALID';
  constructor(message = 'digest invalid', options?: OciErrorOptions) {
    super('OCI_ERR_DIGEST_INVALID', message, options, 'DIGEST_INVALID');
  }
}

/** A size is invalid (negative, not an integer, or refused by the registry) (registry code `SIZE_INVALID`). */
export class SizeInvalidError extends OciError {
  override name = 'SizeInvalidError';
  declare readonly code: 'OCI_ERR_SIZE_INVALID';
  constructor(message = 'size invalid', options?: OciErrorOptions) {
    super('OCI_ERR_SIZE_INVALID', message, options, 'SIZE_INVALID');
  }
}

/** A repository name breaks the distribution-spec grammar (registry code `NAME_INVALID`). */
export class NameInvalidError extends OciError {
  override name = 'NameInvalidError';
  declare readonly code: 'OCI_ERR_NAME_INVALID';
  constructor(message = 'repository name invalid', options?: OciErrorOptions) {
    super('OCI_ERR_NAME_INVALID', message, options, 'NAME_INVALID');
  }
}

/** A tag breaks `^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$` (registry code `TAG_INVALID`). */
export class TagInvalidError extends OciError {
  override name = 'TagInvalidError';
  declare readonly code: 'OCI_ERR_TAG_INVALID';
  constructor(message = 'tag invalid', options?: OciErrorOptions) {
    super('OCI_ERR_TAG_INVALID', message, options, 'TAG_INVALID');
  }
}

/** The registry refused access to the resource (HTTP 403, or 401 `insufficient_scope` with credentials; registry code `DENIED`). */
export class DeniedError extends OciError {
  override name = 'DeniedError';
  declare readonly code: 'OCI_ERR_DENIED';
  constructor(message = 'requested access to the resource is denied', options?: OciErrorOptions) {
    super('OCI_ERR_DENIED', message, options, 'DENIED');
  }
}

/** Authentication failed or is required (HTTP 401; registry code `UNAUTHORIZED`). */
export class UnauthorizedError extends OciError {
  override name = 'UnauthorizedError';
  declare readonly code: 'OCI_ERR_UNAUTHORIZED';
  constructor(message = 'authentication required', options?: OciErrorOptions) {
    super('OCI_ERR_UNAUTHORIZED', message, options, 'UNAUTHORIZED');
  }
}

/** The registry does not support the operation (e.g. HTTP 405 on delete; registry code `UNSUPPORTED`). */
export class UnsupportedError extends OciError {
  override name = 'UnsupportedError';
  declare readonly code: 'OCI_ERR_UNSUPPORTED';
  constructor(message = 'the operation is unsupported', options?: OciErrorOptions) {
    super('OCI_ERR_UNSUPPORTED', message, options, 'UNSUPPORTED');
  }
}

/** The registry rate-limited the client and retries ran out (HTTP 429; registry code `TOOMANYREQUESTS`). */
export class TooManyRequestsError extends OciError {
  override name = 'TooManyRequestsError';
  declare readonly code: 'OCI_ERR_TOO_MANY_REQUESTS';
  constructor(message = 'too many requests', options?: OciErrorOptions) {
    super('OCI_ERR_TOO_MANY_REQUESTS', message, options, 'TOOMANYREQUESTS');
  }
}

/** Bytes did not hash to the expected digest; they were not handed on. */
export class DigestMismatchError extends OciError {
  override name = 'DigestMismatchError';
  declare readonly code: 'OCI_ERR_DIGEST_MISMATCH';
  constructor(message = 'content digest mismatch', options?: OciErrorOptions) {
    super('OCI_ERR_DIGEST_MISMATCH', message, options);
  }
}

/** Content was longer or shorter than its descriptor says; it was not handed on. */
export class SizeMismatchError extends OciError {
  override name = 'SizeMismatchError';
  declare readonly code: 'OCI_ERR_SIZE_MISMATCH';
  constructor(message = 'content size mismatch', options?: OciErrorOptions) {
    super('OCI_ERR_SIZE_MISMATCH', message, options);
  }
}

/** An `oci://` reference is malformed; thrown before any request. */
export class InvalidReferenceError extends OciError {
  override name = 'InvalidReferenceError';
  declare readonly code: 'OCI_ERR_INVALID_REFERENCE';
  constructor(message = 'invalid OCI reference', options?: OciErrorOptions) {
    super('OCI_ERR_INVALID_REFERENCE', message, options);
  }
}

/** An option has an invalid value; the message names the option. */
export class InvalidOptionError extends OciError {
  override name = 'InvalidOptionError';
  declare readonly code: 'OCI_ERR_INVALID_OPTION';
  constructor(message = 'invalid option', options?: OciErrorOptions) {
    super('OCI_ERR_INVALID_OPTION', message, options);
  }
}

/** A redirect (or a token realm) would have downgraded HTTPS to HTTP; it was refused. */
export class InsecureRedirectError extends OciError {
  override name = 'InsecureRedirectError';
  declare readonly code: 'OCI_ERR_INSECURE_REDIRECT';
  constructor(message = 'refused a redirect from HTTPS to HTTP', options?: OciErrorOptions) {
    super('OCI_ERR_INSECURE_REDIRECT', message, options);
  }
}

/** A connect, headers or idle-body timeout expired. */
export class OciTimeoutError extends OciError {
  override name = 'OciTimeoutError';
  declare readonly code: 'OCI_ERR_TIMEOUT';
  constructor(message = 'request timed out', options?: OciErrorOptions) {
    super('OCI_ERR_TIMEOUT', message, options);
  }
}

/** A network failure (connection refused or reset, TLS failure) after retries ran out. */
export class NetworkError extends OciError {
  override name = 'NetworkError';
  declare readonly code: 'OCI_ERR_NETWORK';
  constructor(message = 'network error', options?: OciErrorOptions) {
    super('OCI_ERR_NETWORK', message, options);
  }
}

/** Any other registry failure (unexpected status, 5xx after retries, an error code this client does not know: see `registryCode`). */
export class RegistryError extends OciError {
  override name = 'RegistryError';
  declare readonly code: 'OCI_ERR_REGISTRY';
  constructor(message = 'registry error', options?: OciErrorOptions) {
    super('OCI_ERR_REGISTRY', message, options);
  }
}

/** Options of {@link StoreLimitError}: the limit and the size that broke it. */
export interface StoreLimitErrorOptions extends OciErrorOptions {
  /** The store's limit in bytes (`OciStore.limits.maxEntrySize`). */
  limit?: number;
  /** The size that was refused, in bytes (when known before reading). */
  size?: number;
}

/**
 * Content is larger than the store's declared limit (`OciStore.limits`): it was refused before
 * anything was stored.
 */
export class StoreLimitError extends OciError {
  override name = 'StoreLimitError';
  declare readonly code: 'OCI_ERR_STORE_LIMIT';
  /** The store's limit in bytes. */
  readonly limit: number | undefined;
  /** The refused size in bytes, if known. */
  readonly size: number | undefined;
  constructor(message = 'content is larger than the store accepts', options: StoreLimitErrorOptions = {}) {
    super('OCI_ERR_STORE_LIMIT', message, options);
    this.limit = options.limit;
    this.size = options.size;
  }
}

/** Options of the image-layout errors: the file the problem is in. */
export interface LayoutErrorOptions extends OciErrorOptions {
  /** The file of the layout the error is about (`index.json`, `oci-layout`, a lock file). */
  path?: string;
}

/** Base of the layout errors: an {@link OciError} that names the layout file it is about. */
abstract class LayoutFileError extends OciError {
  /** The offending file. */
  readonly path: string | undefined;
  constructor(
    code: 'OCI_ERR_LAYOUT_INVALID' | 'OCI_ERR_LAYOUT_VERSION_UNSUPPORTED' | 'OCI_ERR_LOCK_TIMEOUT',
    message: string,
    options: LayoutErrorOptions,
  ) {
    super(code, message, options);
    this.path = options.path;
  }
}

/** `index.json` or `oci-layout` of an image layout is not valid JSON or has the wrong shape. */
export class LayoutInvalidError extends LayoutFileError {
  override name = 'LayoutInvalidError';
  declare readonly code: 'OCI_ERR_LAYOUT_INVALID';
  constructor(message = 'image layout is invalid', options: LayoutErrorOptions = {}) {
    super('OCI_ERR_LAYOUT_INVALID', message, options);
  }
}

/** The layout's `oci-layout` file names an `imageLayoutVersion` other than `1.0.0`. */
export class LayoutVersionUnsupportedError extends LayoutFileError {
  override name = 'LayoutVersionUnsupportedError';
  declare readonly code: 'OCI_ERR_LAYOUT_VERSION_UNSUPPORTED';
  constructor(message = 'image layout version is not supported', options: LayoutErrorOptions = {}) {
    super('OCI_ERR_LAYOUT_VERSION_UNSUPPORTED', message, options);
  }
}

/** The layout's `index.json.lock` could not be taken in time (another writer holds it). */
export class LockTimeoutError extends LayoutFileError {
  override name = 'LockTimeoutError';
  declare readonly code: 'OCI_ERR_LOCK_TIMEOUT';
  constructor(message = 'timed out waiting for a lock', options: LayoutErrorOptions = {}) {
    super('OCI_ERR_LOCK_TIMEOUT', message, options);
  }
}
