/**
 * Messages between the extract worker and its write worker (write.worker.ts). Kept apart from
 * write.worker.ts because importing that module would install its message handler.
 */
import type { WorkerFailure } from './protocol.js';

// Layout of a write job's control array (Int32Array over a SharedArrayBuffer, WCTRL_LENGTH long).
/** Files handed over (sent in a batch) and not yet created. */
export const WCTRL_FILES = 0;
/** Bytes of those files. */
export const WCTRL_BYTES = 1;
/** Set by the extract worker to stop the job at the next file. */
export const WCTRL_STOP = 2;
/** Length of the control array. */
export const WCTRL_LENGTH = 3;

/** One small file of a batch: `size` bytes at `offset` of the batch's buffer. */
export interface SmallFile {
  /** Absolute path inside the staging directory (checked by the extract worker). */
  target: string;
  offset: number;
  size: number;
  /** Permission bits, applied after the bytes are written. */
  mode: number;
  mtimeMs?: number;
}

/** Messages from the extract worker to its write worker. */
export type WriteRequest =
  | { op: 'start'; id: number; control: SharedArrayBuffer }
  | { op: 'batch'; id: number; bytes: Uint8Array; files: SmallFile[] }
  | { op: 'stop'; id: number };

/**
 * Replies: `written` confirms every file of one batch (in order) and gives its buffer back;
 * `error` is the first failure of the job (later batches are dropped); `stopped` answers `stop`
 * once nothing of the job is being or will be written.
 */
export type WriteResponse =
  | { op: 'written'; id: number; bytes: Uint8Array }
  | { op: 'error'; id: number; error: WorkerFailure }
  | { op: 'stopped'; id: number };
