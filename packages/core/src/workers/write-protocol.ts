/**
 * Messages between the extract worker and its write worker (write.worker.ts). Kept apart from
 * write.worker.ts because importing that module would install its message handler.
 */
import type { WorkerFailure } from './protocol.js';

// Layout of a write job's control array (Int32Array over a SharedArrayBuffer).
/** Files handed over (sent in a batch) and not yet created. */
export const WCTRL_FILES = 0;
/** Set by the extract worker to stop the job at the next file. */
export const WCTRL_STOP = 1;
/** Bytes of the ring freed so far (the spans of written batches; wraps as an Int32). */
export const WCTRL_FREED = 2;
/** Length of the control array. */
export const WCTRL_LENGTH = 3;

/** One small file of a batch: `size` bytes at `offset` of the ring. */
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
  | {
      op: 'start';
      id: number;
      control: SharedArrayBuffer;
      /** The files' bytes, a ring the extract worker fills and the writer frees in order. */
      ring: SharedArrayBuffer;
    }
  | {
      op: 'batch';
      id: number;
      files: SmallFile[];
      /** Bytes of the ring this batch holds; freed (added to WCTRL_FREED) once it is written. */
      span: number;
    }
  | { op: 'stop'; id: number };

/**
 * Replies: `written` confirms every file of one batch (in order);
 * `error` is the first failure of the job (later batches are dropped); `stopped` answers `stop`
 * once nothing of the job is being or will be written.
 */
export type WriteResponse =
  | { op: 'written'; id: number }
  | { op: 'error'; id: number; error: WorkerFailure }
  | { op: 'stopped'; id: number };
