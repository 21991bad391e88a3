/** Codes of the errors thrown by `@task-cache/chunker`. */
export type ChunkerErrorCode =
  | 'CHUNKER_ERR_INVALID_OPTION'
  | 'CHUNKER_ERR_INVALID_INPUT'
  | 'CHUNKER_ERR_WASM_UNAVAILABLE';

/** Base class of every error thrown by `@task-cache/chunker` (aborts rethrow `signal.reason` as is). */
export class ChunkerError extends Error {
  override name = 'ChunkerError';
  /** Stable, literal error code. */
  readonly code: ChunkerErrorCode;

  constructor(code: ChunkerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Names of the chunking options, as they appear in {@link ChunkerOptionError.option}. */
export type ChunkerOptionName = 'avgSize' | 'minSize' | 'maxSize' | 'normalization' | 'seed';

/**
 * An option of `chunkBuffer` / `chunkStream` is invalid; `option` names it and the message says why
 * (e.g. `avgSize must be a power of two, got 1000`).
 */
export class ChunkerOptionError extends ChunkerError {
  override name = 'ChunkerOptionError';
  declare readonly code: 'CHUNKER_ERR_INVALID_OPTION';
  /** The offending option. */
  readonly option: ChunkerOptionName;

  constructor(option: ChunkerOptionName, message: string, options?: { cause?: unknown }) {
    super('CHUNKER_ERR_INVALID_OPTION', message, options);
    this.option = option;
  }
}

/** The data to chunk is not bytes (not a `Uint8Array`, or a stream piece that is not one). */
export class ChunkerInputError extends ChunkerError {
  override name = 'ChunkerInputError';
  declare readonly code: 'CHUNKER_ERR_INVALID_INPUT';

  constructor(message: string, options?: { cause?: unknown }) {
    super('CHUNKER_ERR_INVALID_INPUT', message, options);
  }
}

/**
 * The WebAssembly scan kernel cannot be instantiated: `WebAssembly` is missing (e.g. Node started with
 * `--jitless`) or refused the module; `cause` holds the underlying error, if any.
 */
export class ChunkerWasmUnavailableError extends ChunkerError {
  override name = 'ChunkerWasmUnavailableError';
  declare readonly code: 'CHUNKER_ERR_WASM_UNAVAILABLE';

  constructor(message: string, options?: { cause?: unknown }) {
    super('CHUNKER_ERR_WASM_UNAVAILABLE', message, options);
  }
}
