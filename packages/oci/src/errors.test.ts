import { describe, expect, it } from 'vitest';
import * as errors from './errors.js';
import { OciError } from './errors.js';

type Ctor = new (message?: string, options?: errors.LayoutErrorOptions) => OciError;

// Every error class: name, its own unique code, the distribution-spec code it stands for (if
// any) and its default message.
const table: Array<[Ctor, string, string, string | undefined, RegExp]> = [
  [errors.BlobUnknownError, 'BlobUnknownError', 'OCI_ERR_BLOB_UNKNOWN', 'BLOB_UNKNOWN', /blob unknown/],
  [
    errors.BlobUploadInvalidError,
    'BlobUploadInvalidError',
    'OCI_ERR_BLOB_UPLOAD_INVALID',
    'BLOB_UPLOAD_INVALID',
    /upload invalid/,
  ],
  [
    errors.BlobUploadUnknownError,
    'BlobUploadUnknownError',
    'OCI_ERR_BLOB_UPLOAD_UNKNOWN',
    'BLOB_UPLOAD_UNKNOWN',
    /upload unknown/,
  ],
  [
    errors.ManifestUnknownError,
    'ManifestUnknownError',
    'OCI_ERR_MANIFEST_UNKNOWN',
    'MANIFEST_UNKNOWN',
    /manifest unknown/,
  ],
  [
    errors.ManifestBlobUnknownError,
    'ManifestBlobUnknownError',
    'OCI_ERR_MANIFEST_BLOB_UNKNOWN',
    'MANIFEST_BLOB_UNKNOWN',
    /references a blob/,
  ],
  [
    errors.ManifestInvalidError,
    'ManifestInvalidError',
    'OCI_ERR_MANIFEST_INVALID',
    'MANIFEST_INVALID',
    /manifest invalid/,
  ],
  [errors.NameUnknownError, 'NameUnknownError', 'OCI_ERR_NAME_UNKNOWN', 'NAME_UNKNOWN', /not known/],
  [
    errors.DigestInvalidError,
    'DigestInvalidError',
    'OCI_ERR_DIGEST_INVALID',
    'DIGEST_INVALID',
    /digest invalid/,
  ],
  [errors.SizeInvalidError, 'SizeInvalidError', 'OCI_ERR_SIZE_INVALID', 'SIZE_INVALID', /size invalid/],
  [errors.NameInvalidError, 'NameInvalidError', 'OCI_ERR_NAME_INVALID', 'NAME_INVALID', /name invalid/],
  [errors.TagInvalidError, 'TagInvalidError', 'OCI_ERR_TAG_INVALID', 'TAG_INVALID', /tag invalid/],
  [errors.DeniedError, 'DeniedError', 'OCI_ERR_DENIED', 'DENIED', /denied/],
  [
    errors.UnauthorizedError,
    'UnauthorizedError',
    'OCI_ERR_UNAUTHORIZED',
    'UNAUTHORIZED',
    /authentication required/,
  ],
  [errors.UnsupportedError, 'UnsupportedError', 'OCI_ERR_UNSUPPORTED', 'UNSUPPORTED', /unsupported/],
  [
    errors.TooManyRequestsError,
    'TooManyRequestsError',
    'OCI_ERR_TOO_MANY_REQUESTS',
    'TOOMANYREQUESTS',
    /too many requests/,
  ],
  [
    errors.DigestMismatchError,
    'DigestMismatchError',
    'OCI_ERR_DIGEST_MISMATCH',
    undefined,
    /digest mismatch/,
  ],
  [errors.SizeMismatchError, 'SizeMismatchError', 'OCI_ERR_SIZE_MISMATCH', undefined, /size mismatch/],
  [
    errors.InvalidReferenceError,
    'InvalidReferenceError',
    'OCI_ERR_INVALID_REFERENCE',
    undefined,
    /invalid OCI reference/,
  ],
  [errors.InvalidOptionError, 'InvalidOptionError', 'OCI_ERR_INVALID_OPTION', undefined, /invalid option/],
  [
    errors.InsecureRedirectError,
    'InsecureRedirectError',
    'OCI_ERR_INSECURE_REDIRECT',
    undefined,
    /HTTPS to HTTP/,
  ],
  [errors.OciTimeoutError, 'OciTimeoutError', 'OCI_ERR_TIMEOUT', undefined, /timed out/],
  [errors.NetworkError, 'NetworkError', 'OCI_ERR_NETWORK', undefined, /network error/],
  [errors.RegistryError, 'RegistryError', 'OCI_ERR_REGISTRY', undefined, /registry error/],
  [
    errors.StoreLimitError,
    'StoreLimitError',
    'OCI_ERR_STORE_LIMIT',
    undefined,
    /larger than the store accepts/,
  ],
  [
    errors.LayoutInvalidError,
    'LayoutInvalidError',
    'OCI_ERR_LAYOUT_INVALID',
    undefined,
    /^image layout is invalid$/,
  ],
  [
    errors.LayoutVersionUnsupportedError,
    'LayoutVersionUnsupportedError',
    'OCI_ERR_LAYOUT_VERSION_UNSUPPORTED',
    undefined,
    /^image layout version is not supported$/,
  ],
  [
    errors.LockTimeoutError,
    'LockTimeoutError',
    'OCI_ERR_LOCK_TIMEOUT',
    undefined,
    /^timed out waiting for a lock$/,
  ],
];

const layoutClasses = new Set<unknown>([
  errors.LayoutInvalidError,
  errors.LayoutVersionUnsupportedError,
  errors.LockTimeoutError,
]);

describe('error classes', () => {
  it('the table covers every exported error class', () => {
    const exported: unknown[] = Object.values(errors).filter(
      (v) => typeof v === 'function' && v.prototype instanceof OciError,
    );
    expect(new Set<unknown>(table.map(([c]) => c))).toEqual(new Set(exported));
  });

  it('codes are unique per class and prefixed OCI_ERR_', () => {
    const codes = table.map(([, , code]) => code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^OCI_ERR_[A-Z_]+$/);
  });

  it.each(
    table,
  )('%o has name, code, registryCode, instanceof, default message, fields', (Ctor, name, code, registryCode, message) => {
    const cause = new Error('root');
    const plain = new Ctor();
    expect(plain).toBeInstanceOf(Error);
    expect(plain).toBeInstanceOf(OciError);
    expect(plain).toBeInstanceOf(Ctor);
    expect(plain.name).toBe(name);
    expect(plain.code).toBe(code);
    expect(plain.registryCode).toBe(registryCode);
    expect(plain.message).toMatch(message);
    expect(plain.cause).toBeUndefined();

    const full = new Ctor('boom', {
      cause,
      statusCode: 418,
      method: 'PUT',
      url: 'https://robot$ci:p%3Ass@reg.example/v2/a/blobs/uploads/x?_state=SECRETSTATE&digest=sha256%3Aab&X-Amz-Signature=SIG',
      digest: 'sha256:ab',
      missingDigests: ['sha256:cd'],
      warnings: ['careful'],
      registryCode: 'SOMETHING_ELSE',
      path: '/x/index.json',
    });
    expect(full.cause).toBe(cause);
    expect(full.statusCode).toBe(418);
    expect(full.method).toBe('PUT');
    expect(full.digest).toBe('sha256:ab');
    expect(full.missingDigests).toEqual(['sha256:cd']);
    expect(full.warnings).toEqual(['careful']);
    // What the registry said wins over the class's own spec code.
    expect(full.registryCode).toBe('SOMETHING_ELSE');
    expect((full as { path?: string }).path).toBe(layoutClasses.has(Ctor) ? '/x/index.json' : undefined);
    expect(full.message).toMatch(
      /^boom \(PUT https:\/\/\*\*\*:\*\*\*@reg\.example\/v2\/a\/blobs\/uploads\/x\?.* HTTP 418\)$/,
    );
    // No secret reaches the message or the url field.
    for (const text of [full.message, full.url!, JSON.stringify(full), String(full.stack)]) {
      expect(text).not.toContain('p%3Ass');
      expect(text).not.toContain('SECRETSTATE');
      expect(text).not.toContain('SIG');
      expect(text).not.toContain('robot$ci');
    }
    expect(full.url).toContain('digest=sha256%3Aab');
  });

  it('redacts relative upload locations too', () => {
    const e = new errors.RegistryError('x', { url: '/v2/a/blobs/uploads/1?_state=abc&digest=sha256:1' });
    expect(e.url).toBe('/v2/a/blobs/uploads/1?_state=***&digest=sha256:1');
  });
});
