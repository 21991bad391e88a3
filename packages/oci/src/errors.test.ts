import { describe, expect, it } from 'vitest';
import * as errors from './errors.js';
import { OciError } from './errors.js';

type Ctor = new (message?: string, options?: errors.OciErrorOptions) => OciError;

// Every error class, with the code and default message it must carry.
const table: Array<[Ctor, string, string, RegExp]> = [
  [errors.BlobUnknownError, 'BlobUnknownError', 'BLOB_UNKNOWN', /blob unknown/],
  [errors.BlobUploadInvalidError, 'BlobUploadInvalidError', 'BLOB_UPLOAD_INVALID', /upload invalid/],
  [errors.BlobUploadUnknownError, 'BlobUploadUnknownError', 'BLOB_UPLOAD_UNKNOWN', /upload unknown/],
  [errors.ManifestUnknownError, 'ManifestUnknownError', 'MANIFEST_UNKNOWN', /manifest unknown/],
  [errors.ManifestBlobUnknownError, 'ManifestBlobUnknownError', 'MANIFEST_BLOB_UNKNOWN', /references a blob/],
  [errors.ManifestInvalidError, 'ManifestInvalidError', 'MANIFEST_INVALID', /manifest invalid/],
  [errors.NameUnknownError, 'NameUnknownError', 'NAME_UNKNOWN', /not known/],
  [errors.DigestInvalidError, 'DigestInvalidError', 'DIGEST_INVALID', /digest invalid/],
  [errors.SizeInvalidError, 'SizeInvalidError', 'SIZE_INVALID', /size invalid/],
  [errors.NameInvalidError, 'NameInvalidError', 'NAME_INVALID', /name invalid/],
  [errors.TagInvalidError, 'TagInvalidError', 'TAG_INVALID', /tag invalid/],
  [errors.DeniedError, 'DeniedError', 'DENIED', /denied/],
  [errors.UnauthorizedError, 'UnauthorizedError', 'UNAUTHORIZED', /authentication required/],
  [errors.UnsupportedError, 'UnsupportedError', 'UNSUPPORTED', /unsupported/],
  [errors.TooManyRequestsError, 'TooManyRequestsError', 'TOOMANYREQUESTS', /too many requests/],
  [errors.DigestMismatchError, 'DigestMismatchError', 'DIGEST_MISMATCH', /digest mismatch/],
  [errors.SizeMismatchError, 'SizeMismatchError', 'SIZE_MISMATCH', /size mismatch/],
  [errors.InvalidReferenceError, 'InvalidReferenceError', 'INVALID_REFERENCE', /invalid OCI reference/],
  [errors.InvalidOptionError, 'InvalidOptionError', 'INVALID_OPTION', /invalid option/],
  [errors.InsecureRedirectError, 'InsecureRedirectError', 'INSECURE_REDIRECT', /HTTPS to HTTP/],
  [errors.OciTimeoutError, 'OciTimeoutError', 'TIMEOUT', /timed out/],
  [errors.NetworkError, 'NetworkError', 'NETWORK', /network error/],
  [errors.RegistryError, 'RegistryError', 'REGISTRY_ERROR', /registry error/],
];

describe('error classes', () => {
  it('the table covers every exported error class', () => {
    const exported: unknown[] = Object.values(errors).filter(
      (v) => typeof v === 'function' && v.prototype instanceof OciError,
    );
    expect(new Set<unknown>(table.map(([c]) => c))).toEqual(new Set(exported));
  });

  it.each(table)('%o has name, code, instanceof, default message, fields', (Ctor, name, code, message) => {
    const cause = new Error('root');
    const plain = new Ctor();
    expect(plain).toBeInstanceOf(Error);
    expect(plain).toBeInstanceOf(OciError);
    expect(plain).toBeInstanceOf(Ctor);
    expect(plain.name).toBe(name);
    expect(plain.code).toBe(code);
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
    });
    expect(full.cause).toBe(cause);
    expect(full.statusCode).toBe(418);
    expect(full.method).toBe('PUT');
    expect(full.digest).toBe('sha256:ab');
    expect(full.missingDigests).toEqual(['sha256:cd']);
    expect(full.warnings).toEqual(['careful']);
    expect(full.message).toMatch(
      /^boom \(PUT https:\/\/REDACTED:REDACTED@reg\.example\/v2\/a\/blobs\/uploads\/x\?.* HTTP 418\)$/,
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
    expect(e.url).toBe('/v2/a/blobs/uploads/1?_state=REDACTED&digest=sha256:1');
  });
});
