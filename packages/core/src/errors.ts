/**
 * Typed errors of `@task-cache/core`. Every error is a {@link TaskCacheError} with a literal
 * `code`; the original failure, when there is one, is kept as `cause`. Messages never carry
 * secrets (credentials, tokens).
 */

/** Options shared by every {@link TaskCacheError}. */
export interface TaskCacheErrorOptions {
  /** The underlying failure. */
  cause?: unknown;
}

/**
 * Base class of every error thrown by `@task-cache/core`. Subclasses narrow `code` to a literal
 * so callers can `switch (err.code)`.
 */
export class TaskCacheError extends Error {
  override name = 'TaskCacheError';
  /** Stable machine-readable code, e.g. `CACHE_ERR_ENTRY_REFUSED`. */
  readonly code: string;

  constructor(code: string, message: string, options: TaskCacheErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/** Codes of {@link CacheConfigError}. */
export type CacheConfigErrorCode =
  | 'CACHE_ERR_INVALID_KEY'
  | 'CACHE_ERR_INVALID_URL'
  | 'CACHE_ERR_INVALID_OPTION'
  | 'CACHE_ERR_MISSING_DEPENDENCY'
  | 'CACHE_ERR_CLOSED';

/**
 * A configuration mistake, raised when the cache is configured (before any network call): an
 * invalid key or tag, an unparsable store or lock URL, a bad option ({@link InvalidOptionError}),
 * a missing optional dependency, a call on a closed cache (`CACHE_ERR_CLOSED`). The message names the
 * problem and the remedy; it never contains a password.
 */
export class CacheConfigError extends TaskCacheError {
  override name = 'CacheConfigError';
  declare readonly code: CacheConfigErrorCode;
  constructor(code: CacheConfigErrorCode, message: string, options: TaskCacheErrorOptions = {}) {
    super(code, message, options);
  }
}

/**
 * An option passed to a public function of core is invalid; `field` names it (`concurrency`,
 * `policy.compressionLevel`, `generates`, …). The one class of the `CACHE_ERR_INVALID_OPTION` code: thrown
 * by `createCache()`, by `run()`/`lookup()`/`restore()`/`save()` at entry, and by the entry
 * functions. It is a {@link CacheConfigError}, so `instanceof CacheConfigError` still catches it.
 */
export class InvalidOptionError extends CacheConfigError {
  override name = 'InvalidOptionError';
  declare readonly code: 'CACHE_ERR_INVALID_OPTION';
  /** The option at fault, e.g. `generates`. */
  readonly field: string;

  constructor(field: string, message: string, options: TaskCacheErrorOptions = {}) {
    super('CACHE_ERR_INVALID_OPTION', `invalid option "${field}": ${message}`, options);
    this.field = field;
  }
}

/** Codes of {@link CacheRunError}. */
export type CacheRunErrorCode = 'CACHE_ERR_RUN_FAILED';

/**
 * Strict mode only: cache trouble (store unreachable, 401, lost lease, corrupt entry, lock
 * unavailable) rejects the run with this error; `reason` is the warning code it would have been,
 * `cause` the underlying error.
 */
export class CacheRunError extends TaskCacheError {
  override name = 'CacheRunError';
  declare readonly code: CacheRunErrorCode;
  /** The warning code this would have been outside strict mode. */
  readonly reason: string;
  constructor(reason: string, message: string, options: TaskCacheErrorOptions = {}) {
    super('CACHE_ERR_RUN_FAILED', message, options);
    this.reason = reason;
  }
}

/** The codes of {@link EntryError}. */
export type EntryErrorCode =
  | 'CACHE_ERR_ENTRY_REFUSED'
  | 'CACHE_ERR_ENTRY_CORRUPT'
  | 'CACHE_ERR_ENTRY_TOO_LARGE'
  | 'CACHE_ERR_ENTRY_OUTPUTS';

/** Fields of an {@link EntryError}. */
export interface EntryErrorOptions extends TaskCacheErrorOptions {
  /** The entry path (inside the archive) at fault, when there is one. */
  path?: string;
  /** The digest of the blob at fault, when there is one. */
  digest?: string;
}

/**
 * Base of the cache-entry errors. The run layer treats every `EntryError` raised by a restore as
 * a cache miss plus a warning: the outputs are left exactly as they were.
 */
export class EntryError extends TaskCacheError {
  override name = 'EntryError';
  declare readonly code: EntryErrorCode;
  /** The entry path at fault, when there is one. */
  readonly path: string | undefined;
  /** The digest of the blob at fault, when there is one. */
  readonly digest: string | undefined;

  constructor(code: EntryErrorCode, message: string, options: EntryErrorOptions = {}) {
    super(code, message, options);
    this.path = options.path;
    this.digest = options.digest;
  }
}

/**
 * An entry contains something a restore must never write: an absolute path, `..`, a path outside
 * `generates`, a symlink leaving the task directory or written through, a hardlink, a device, a
 * FIFO, a setuid/setgid bit.
 */
export class EntryRefusedError extends EntryError {
  override name = 'EntryRefusedError';
  declare readonly code: 'CACHE_ERR_ENTRY_REFUSED';
  constructor(message: string, options: EntryErrorOptions = {}) {
    super('CACHE_ERR_ENTRY_REFUSED', message, options);
  }
}

/**
 * An entry's bytes do not match what it declares: a malformed manifest or config, a chunk whose
 * uncompressed size or digest differs from the config, a blob failing verification, a bad archive.
 */
export class EntryCorruptError extends EntryError {
  override name = 'EntryCorruptError';
  declare readonly code: 'CACHE_ERR_ENTRY_CORRUPT';
  constructor(message: string, options: EntryErrorOptions = {}) {
    super('CACHE_ERR_ENTRY_CORRUPT', message, options);
  }
}

/** An entry (or one of its chunks) is larger than the configured cap. */
export class EntryTooLargeError extends EntryError {
  override name = 'EntryTooLargeError';
  declare readonly code: 'CACHE_ERR_ENTRY_TOO_LARGE';
  /** The cap in bytes. */
  readonly limit: number;
  /** The size found (or declared), in bytes. */
  readonly size: number;
  constructor(message: string, fields: { limit: number; size: number } & EntryErrorOptions) {
    super('CACHE_ERR_ENTRY_TOO_LARGE', message, fields);
    this.limit = fields.limit;
    this.size = fields.size;
  }
}

/**
 * The task's outputs cannot be saved as they are (e.g. a file type that an entry cannot hold,
 * a symlink pointing outside the task directory).
 */
export class EntryOutputsError extends EntryError {
  override name = 'EntryOutputsError';
  declare readonly code: 'CACHE_ERR_ENTRY_OUTPUTS';
  constructor(message: string, options: EntryErrorOptions = {}) {
    super('CACHE_ERR_ENTRY_OUTPUTS', message, options);
  }
}

/**
 * A store operation of a run (lookup, save, restore) took longer than its budget (the
 * `timeouts` option of `createCache()`): cache trouble like any other, reported as the step's
 * warning with this as its cause, or thrown (as the cause of a {@link CacheRunError}) in strict mode.
 */
export class CacheTimeoutError extends TaskCacheError {
  override name = 'CacheTimeoutError';
  declare readonly code: 'CACHE_ERR_TIMEOUT';
  /** The budget that ran out, in milliseconds. */
  readonly timeoutMs: number;
  constructor(message: string, fields: { timeoutMs: number } & TaskCacheErrorOptions) {
    super('CACHE_ERR_TIMEOUT', message, fields);
    this.timeoutMs = fields.timeoutMs;
  }
}

/** What a file-system error code means, for {@link CacheFsError}'s message. */
const FS_MEANINGS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EFBIG: 'the file is larger than this process may write (ulimit -f) or the file system allows',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
  EIO: 'an input/output error of the device',
  ENOENT: 'no such file or directory',
  EBUSY: 'the file is busy',
  ETXTBSY: 'the file is a running executable',
};

/**
 * A local file-system operation of a save or a restore failed for a reason of the machine, not
 * of the entry's content: no space left, permission denied, a read-only file system, too many
 * open files. (Paths the entry's content makes the file system refuse are an
 * {@link EntryRefusedError}.) `errno` is Node's code (`ENOSPC`), `path` the file at fault.
 * A restore that fails this way leaves the outputs as they were; `run()` reports it as a warning.
 */
export class CacheFsError extends TaskCacheError {
  override name = 'CacheFsError';
  declare readonly code: 'CACHE_ERR_FS';
  /** Node's error code, e.g. `ENOSPC`, `EACCES`. */
  readonly errno: string;
  /** The system call that failed, e.g. `write`, `open`. */
  readonly syscall: string | undefined;
  /** The file or directory at fault, when known. */
  readonly path: string | undefined;
  constructor(
    operation: 'save' | 'restore',
    fields: { errno: string; syscall?: string; path?: string } & TaskCacheErrorOptions,
  ) {
    const what = FS_MEANINGS[fields.errno] ?? 'the file system refused it';
    const where = fields.path === undefined ? '' : ` on ${JSON.stringify(fields.path.slice(0, 300))}`;
    super(
      'CACHE_ERR_FS',
      `${operation}: ${fields.syscall ?? 'a file-system call'}${where} failed: ${what} [${fields.errno}]`,
      fields,
    );
    this.errno = fields.errno;
    this.syscall = fields.syscall;
    this.path = fields.path;
  }
}

/**
 * `err` as a {@link CacheFsError} when it is a raw Node file-system error (it has a `code` and a
 * `syscall`), else `err` unchanged. Internal: used by the entry functions at their boundary.
 * @internal
 */
export function asCacheFsError(err: unknown, operation: 'save' | 'restore'): unknown {
  if (err instanceof TaskCacheError) return err;
  const e = err as NodeJS.ErrnoException | null;
  if (typeof e?.code !== 'string' || typeof e.syscall !== 'string') return err;
  return new CacheFsError(operation, {
    errno: e.code,
    syscall: e.syscall,
    ...(typeof e.path === 'string' ? { path: e.path } : {}),
    cause: err,
  });
}
