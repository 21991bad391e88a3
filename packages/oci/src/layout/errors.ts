/**
 * Typed errors of the image-layout store. They extend {@link OciError}, so callers that
 * handle the registry's errors handle these the same way (`code`, `instanceof`).
 */
import { OciError, type OciErrorOptions } from '../errors.js';

/** Options of the layout errors: the file the problem is in. */
export interface LayoutErrorOptions extends OciErrorOptions {
  /** The file of the layout the error is about (`index.json`, `oci-layout`, a lock file). */
  path?: string;
}

/** Base of the layout errors: an {@link OciError} that names the layout file it is about. */
abstract class LayoutFileError extends OciError {
  /** The offending file. */
  readonly path: string | undefined;
  constructor(
    code: 'LAYOUT_INVALID' | 'LAYOUT_VERSION_UNSUPPORTED' | 'LOCK_TIMEOUT',
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
  declare readonly code: 'LAYOUT_INVALID';
  constructor(message = 'image layout is invalid', options: LayoutErrorOptions = {}) {
    super('LAYOUT_INVALID', message, options);
  }
}

/** The layout's `oci-layout` file names an `imageLayoutVersion` other than `1.0.0`. */
export class LayoutVersionUnsupportedError extends LayoutFileError {
  override name = 'LayoutVersionUnsupportedError';
  declare readonly code: 'LAYOUT_VERSION_UNSUPPORTED';
  constructor(message = 'image layout version is not supported', options: LayoutErrorOptions = {}) {
    super('LAYOUT_VERSION_UNSUPPORTED', message, options);
  }
}

/** The `index.json.lock` could not be taken in time (another writer holds it). */
export class LockTimeoutError extends LayoutFileError {
  override name = 'LockTimeoutError';
  declare readonly code: 'LOCK_TIMEOUT';
  constructor(message = 'timed out waiting for a lock', options: LayoutErrorOptions = {}) {
    super('LOCK_TIMEOUT', message, options);
  }
}
