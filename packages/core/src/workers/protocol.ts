/** Messages between core and its worker threads (plain data: structured clone). */

/** An error thrown in a worker, as data; {@link ../workers/errors.ts} turns it back into a typed error. */
export interface WorkerFailure {
  kind: 'corrupt' | 'too-large' | 'outputs' | 'refused' | 'aborted' | 'fs' | 'other';
  message: string;
  path?: string;
  limit?: number;
  size?: number;
  /** errno code / syscall of a file-system failure. */
  code?: string;
  syscall?: string;
}

/** Compress one chunk (`input` may view a SharedArrayBuffer slot). */
export interface CompressRequest {
  op: 'compress';
  id: number;
  codec: 'node' | 'zstd-codec';
  level: number;
  input: Uint8Array;
  /** Skip the frame's sha256 (the response's `digest` is then empty): format v2 hashes whole packs. */
  noDigest?: boolean;
  /**
   * Where to put the compressed frame (a view of shared memory, at least the frame bound of
   * `input`); the response then carries an empty `output` and the frame's `length`.
   */
  into?: Uint8Array;
}

/** Decompress one chunk and check its uncompressed size and sha256. */
export interface DecompressRequest {
  op: 'decompress';
  id: number;
  codec: 'node' | 'zstd-codec';
  input: Uint8Array;
  /** Exact uncompressed size the config declares (also the bound). */
  size: number;
  /** Expected `sha256:` digest of the uncompressed bytes. */
  digest: string;
  /** Index of the chunk in the entry, for messages. */
  index: number;
  /**
   * Where to put the verified bytes (a view of shared memory, at least `size` bytes); the
   * response then carries an empty `output`. Without it the bytes come back transferred.
   */
  into?: Uint8Array;
}

/**
 * The sha256 of one chunk (`input` views a pack slot): the pack worker leaves the chunk digests to
 * the codec workers, so that cutting and hashing run on different cores.
 */
export interface DigestRequest {
  op: 'digest';
  id: number;
  input: Uint8Array;
}

export type CodecRequest = CompressRequest | DecompressRequest | DigestRequest;

export type CodecResponse =
  | { id: number; ok: true; output: Uint8Array; digest: string; length: number }
  | {
      id: number;
      ok: false;
      error: WorkerFailure;
      /** The worker cannot serve further requests and is exiting (zstd-codec aborted). */
      fatal?: true;
    };

/** One output as the pack worker needs it. */
export interface PackOutput {
  path: string;
  kind: 'file' | 'directory' | 'symlink' | 'other';
  /** Permission bits (`mode & 0o777`). */
  mode: number;
  size: number;
  /** mtime in whole seconds (used only when mtimes are kept). */
  mtime: number;
}

/** Layout of the pack job's control array (Int32Array over a SharedArrayBuffer). */
export const CTRL_FREE = 0;
export const CTRL_ABORT = 1;
export const CTRL_STATES = 2;

export interface PackRequest {
  op: 'pack';
  id: number;
  dir: string;
  /** The task's `generates` globs; the worker lists the outputs itself (sync fs calls). */
  generates: readonly string[];
  keepMtimes: boolean;
  chunking: { avgSize: number; minSize: number; maxSize: number; normalization: number; seed: number };
  /** `slotCount` slots of `slotSize` bytes each, where finished chunks are handed over. */
  slots: SharedArrayBuffer;
  slotSize: number;
  slotCount: number;
  /** Int32Array: [free slots, abort flag, slot states (0 free, 1 taken)...]. */
  control: SharedArrayBuffer;
  /** Leave the chunks' digests to the caller (`chunk` messages then carry an empty `digest`). */
  noDigest?: boolean;
}

export type PackResponse =
  | { op: 'chunk'; id: number; slot: number; length: number; digest: string }
  | { op: 'done'; id: number; files: number; entries: number; size: number }
  | { op: 'error'; id: number; error: WorkerFailure };

/** Extraction of an entry's archive into a staging directory (see extract.worker.ts). */
export type ExtractRequest =
  | {
      op: 'start';
      id: number;
      staging: string;
      /** The task's `generates`: only matching paths may be written. */
      generates: readonly string[];
      keepMtimes: boolean;
    }
  | { op: 'data'; id: number; bytes: Uint8Array }
  | { op: 'end'; id: number }
  | { op: 'abort'; id: number };

/** One extracted entry (as internal/tar-extract.ts `ExtractedEntry`, mtime in ms). */
export interface ExtractedRecord {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  mtimeMs?: number;
  linkname?: string;
}

export type ExtractResponse =
  | { op: 'ack'; id: number }
  | { op: 'aborted'; id: number }
  | { op: 'done'; id: number; entries: ExtractedRecord[] }
  | { op: 'error'; id: number; error: WorkerFailure };
