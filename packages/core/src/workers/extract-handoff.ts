/**
 * The hand-over of small files from the extract worker to the write worker (write.worker.ts):
 * their bytes are copied into a ring of shared memory, sent in batches, and written by the other
 * thread while this one goes on parsing. See extract.worker.ts for why and when.
 */
import type { Worker } from 'node:worker_threads';
import {
  type SmallFile,
  WCTRL_FILES,
  WCTRL_FREED,
  WCTRL_LENGTH,
  WCTRL_STOP,
  type WriteRequest,
} from './write-protocol.js';

/** A batch is sent at this many files or bytes (or sooner, see LOW_WATER and `flush`). */
const BATCH_FILES = 64;
const BATCH_BYTES = 1024 * 1024;
/**
 * Shared memory holding the bytes of the files handed over and not yet written: all the memory
 * the hand-over uses. When it is full, this thread writes files itself.
 */
const RING_BYTES = 4 * 1024 * 1024;
/** Above this many files handed over and not yet written, this thread writes itself. */
const QUEUE_FILES = 512;
/** A directory reached while the writer has fewer files than this to write goes to the writer. */
const HAND_OVER_BELOW = 64;
/** A partial batch is sent at once when the writer has fewer files than this left to write. */
const LOW_WATER = 16;

/**
 * The small files of one job on their way to the write worker: their bytes, copied into a ring
 * of shared memory (the writer frees each batch's span after writing it, in order), the batch
 * being filled, and the state shared with the writer (files it has not written yet, bytes freed,
 * the stop flag).
 */
export class Handoff {
  readonly control = new Int32Array(new SharedArrayBuffer(WCTRL_LENGTH * 4));
  /** Batches sent and not yet confirmed. */
  pending = 0;
  /** RING_BYTES (its pages are touched only as files fill them). */
  private readonly ring = new SharedArrayBuffer(RING_BYTES);
  /** Where the next file's bytes go. */
  private head = 0;
  /** Bytes reserved so far, wrapping like the writer's Int32 WCTRL_FREED. */
  private reserved = 0;
  private files: SmallFile[] = [];
  /** Bytes of the ring the current batch holds (its files and any gap skipped at the end). */
  private span = 0;
  /** Directories (of the archive) whose small files go to the writer (true) or stay here. */
  private readonly owners = new Map<string, boolean>();

  constructor(
    private readonly id: number,
    readonly writer: Worker,
  ) {
    this.send({ op: 'start', id, control: this.control.buffer as SharedArrayBuffer, ring: this.ring });
  }

  /**
   * Reserves ring space for a file of `size` bytes in directory `dir`; `undefined` when the
   * file stays with this thread: `dir` is not the writer's, or the writer already has enough
   * queued (then the rest of `dir` stays here too).
   */
  take(dir: string, size: number): { into: Uint8Array; offset: number } | undefined {
    if (Atomics.load(this.control, WCTRL_STOP) !== 0) return undefined;
    const queued = Atomics.load(this.control, WCTRL_FILES) + this.files.length;
    let writers = this.owners.get(dir);
    if (writers === undefined) {
      writers = queued < HAND_OVER_BELOW;
      this.owners.set(dir, writers);
    }
    if (!writers) return undefined;
    const gap = this.head + size > RING_BYTES ? RING_BYTES - this.head : 0;
    const inFlight = (this.reserved - Atomics.load(this.control, WCTRL_FREED)) | 0;
    if (queued >= QUEUE_FILES || inFlight + gap + size > RING_BYTES) {
      this.owners.set(dir, false);
      return undefined;
    }
    if (gap > 0 || this.head + size > RING_BYTES) this.head = 0;
    const offset = this.head;
    this.head += size;
    this.reserved = (this.reserved + gap + size) | 0;
    this.span += gap + size;
    return { into: new Uint8Array(this.ring, offset, size), offset };
  }

  /** Adds the file whose bytes were copied into the room `take` gave. */
  add(file: SmallFile): void {
    this.files.push(file);
    if (this.files.length >= BATCH_FILES || this.span >= BATCH_BYTES) this.flush();
  }

  /** Sends the batch now if the writer is about to run out of work. */
  feed(): void {
    if (this.files.length > 0 && Atomics.load(this.control, WCTRL_FILES) < LOW_WATER) this.flush();
  }

  flush(): void {
    if (this.files.length === 0) return;
    Atomics.add(this.control, WCTRL_FILES, this.files.length);
    this.pending++;
    this.send({ op: 'batch', id: this.id, files: this.files, span: this.span });
    this.files = [];
    this.span = 0;
  }

  /** The writer created every file of one batch. */
  written(): void {
    this.pending--;
  }

  /** Makes the writer skip whatever it has not written yet; the unsent batch is dropped. */
  stop(): void {
    Atomics.store(this.control, WCTRL_STOP, 1);
    this.files = [];
    this.span = 0;
  }

  private send(m: WriteRequest): void {
    this.writer.postMessage(m);
  }
}
