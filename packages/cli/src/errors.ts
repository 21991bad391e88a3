/**
 * Exit codes of `task-cache` (the sysexits.h numbers where one fits) and the CLI's own error class.
 */

/** Exit codes of the `task-cache` command (besides the wrapped command's own code on a miss). */
export const EXIT = {
  /** A hit, or a miss whose command exited 0; `doctor` with no `fail`. */
  ok: 0,
  /** `doctor`: at least one check failed. */
  doctorFailed: 1,
  /** An unexpected error of the CLI itself (EX_SOFTWARE). */
  internal: 70,
  /** Bad flags, an unknown task, a missing command, an unreadable config file (EX_USAGE). */
  usage: 64,
  /** Strict mode: cache trouble (registry down, 401, lost lease, corrupt entry) (EX_TEMPFAIL). */
  cacheTrouble: 75,
  /** Strict mode: a cache configuration error (bad store or lock URL, missing ioredis) (EX_CONFIG). */
  cacheConfig: 78,
  /** The command could not be started (not found, not executable), as a shell does. */
  commandNotFound: 127,
} as const;

/** Codes of {@link CliError}. */
export type CliErrorCode = 'CLI_ERR_USAGE' | 'CLI_ERR_CONFIG_FILE';

/**
 * A mistake on the command line or in the config file (`task-cache.json`, package.json
 * `"taskCache"`): the message names the flag, the field or the file. Exits with {@link EXIT}.usage.
 */
export class CliError extends Error {
  override name = 'CliError';
  readonly code: CliErrorCode;
  constructor(code: CliErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.code = code;
  }
}
