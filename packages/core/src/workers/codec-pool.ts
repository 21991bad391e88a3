/**
 * A small pool of codec workers (two by default: this code targets 2-core CI runners, and
 * zstd at level 3 saturates a core). One pool per process, started on first use; idle workers
 * do not keep the process alive.
 */
import type { Worker } from 'node:worker_threads';
import { EntryCorruptError } from '../errors.js';
import { failureToError } from './errors.js';
import type { CodecRequest, CodecResponse } from './protocol.js';
import { spawnWorker } from './spawn.js';

/** Which zstd implementation a worker runs. */
export type WorkerCodec = 'node' | 'zstd-codec';

interface Pending {
  resolve(r: { output: Uint8Array; digest: string; length: number }): void;
  reject(err: unknown): void;
  digest?: string;
}

interface Slot {
  worker: Worker;
  inFlight: number;
  pending: Map<number, Pending>;
}

/** Calls made through the pool so far (tests assert that a reuse save compressed nothing). */
export interface CodecStats {
  compress: number;
  compressedBytesIn: number;
  decompress: number;
}

/** Compression and decompression off the main thread. */
export interface CodecPool {
  /**
   * Compresses `input` (may view shared memory, which must stay untouched until this settles).
   * With `into` (shared memory of at least `compressBound(input.byteLength)` bytes) the frame
   * is written there and `output` is a view of it.
   */
  compress(
    codec: WorkerCodec,
    input: Uint8Array,
    level: number,
    into?: Uint8Array,
    noDigest?: boolean,
  ): Promise<{ output: Uint8Array; digest: string }>;
  /**
   * Decompresses `input` (a buffer it owns is transferred: do not use it afterwards; shared
   * memory is read in place) and checks the result is exactly `size` bytes with sha256 `digest`.
   * With `into` (shared memory) the bytes are written there and a view of them is returned.
   * @throws {EntryCorruptError | EntryTooLargeError}
   */
  decompress(
    codec: WorkerCodec,
    input: Uint8Array,
    size: number,
    digest: string,
    index: number,
    layerDigest?: string,
    into?: Uint8Array,
  ): Promise<Uint8Array>;
  /**
   * The `sha256:` digest of `input` (a view of shared memory, untouched until this settles),
   * computed by a worker.
   */
  digest(input: Uint8Array): Promise<string>;
  readonly stats: CodecStats;
  readonly size: number;
  /** Stops the workers (a later call starts new ones). */
  close(): Promise<void>;
}

let nextId = 1;

/** Creates a pool of `size` codec workers, started lazily. */
export function createCodecPool(size = 2): CodecPool {
  const slots: Array<Slot | undefined> = new Array(size).fill(undefined);
  const stats: CodecStats = { compress: 0, compressedBytesIn: 0, decompress: 0 };

  const start = (i: number): Slot => {
    const worker = spawnWorker('codec');
    const slot: Slot = { worker, inFlight: 0, pending: new Map() };
    worker.on('message', (res: CodecResponse) => {
      // A worker that is exiting takes no new requests: the next call starts a fresh one.
      if (!res.ok && res.fatal && slots[i] === slot) slots[i] = undefined;
      const p = slot.pending.get(res.id);
      if (p === undefined) return;
      slot.pending.delete(res.id);
      if (--slot.inFlight === 0) worker.unref();
      if (res.ok) p.resolve({ output: res.output, digest: res.digest, length: res.length });
      else p.reject(failureToError(res.error, p.digest));
    });
    const fail = (err: unknown) => {
      if (slots[i] === slot) slots[i] = undefined;
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`codec worker exited with code ${code}`)));
    // NOTE: after the listeners: adding a 'message' listener refs the worker's port again
    // (regression: an unused idle worker kept the process from exiting).
    worker.unref();
    slots[i] = slot;
    return slot;
  };

  const pick = (): Slot => {
    let best: Slot | undefined;
    for (let i = 0; i < size; i++) {
      const s = slots[i] ?? start(i);
      if (best === undefined || s.inFlight < best.inFlight) best = s;
    }
    return best as Slot;
  };

  const call = (
    req: CodecRequest,
    transfer: ArrayBuffer[],
    digest?: string,
  ): Promise<{ output: Uint8Array; digest: string; length: number }> =>
    new Promise((resolve, reject) => {
      const slot = pick();
      slot.pending.set(req.id, { resolve, reject, digest });
      if (slot.inFlight++ === 0) slot.worker.ref();
      try {
        slot.worker.postMessage(req, transfer);
      } catch (err) {
        // e.g. an input whose buffer was already transferred (detached): nothing was sent.
        slot.pending.delete(req.id);
        if (--slot.inFlight === 0) slot.worker.unref();
        reject(err);
      }
    });

  return {
    stats,
    size,
    async compress(codec, input, level, into, noDigest) {
      stats.compress++;
      stats.compressedBytesIn += input.byteLength;
      const req: CodecRequest = { op: 'compress', id: nextId++, codec, level, input };
      if (into !== undefined) req.into = into;
      if (noDigest === true) req.noDigest = true;
      const r = await call(req, []);
      return { output: into === undefined ? r.output : into.subarray(0, r.length), digest: r.digest };
    },
    async digest(input) {
      return (await call({ op: 'digest', id: nextId++, input }, [])).digest;
    },
    async decompress(codec, input, size, digest, index, layerDigest, into) {
      // NOTE: a zstd frame is never empty; an empty view is also what a transferred (detached)
      // buffer leaves behind, which some Node versions would post as a message never answered.
      if (input.byteLength === 0) {
        throw new EntryCorruptError(`chunk ${index} is empty, not a zstd frame`, { digest: layerDigest });
      }
      stats.decompress++;
      const owns = input.byteOffset === 0 && input.buffer.byteLength === input.byteLength;
      const transfer = owns && input.buffer instanceof ArrayBuffer ? [input.buffer] : [];
      const req: CodecRequest = { op: 'decompress', id: nextId++, codec, input, size, digest, index };
      if (into !== undefined) req.into = into.subarray(0, size);
      const r = await call(req, transfer, layerDigest);
      return into === undefined ? r.output : into.subarray(0, size);
    },
    async close() {
      const running = slots.filter((s): s is Slot => s !== undefined);
      slots.fill(undefined);
      await Promise.all(running.map((s) => s.worker.terminate()));
    },
  };
}

let shared: CodecPool | undefined;

/** The process-wide codec pool (2 workers). */
export function codecPool(): CodecPool {
  shared ??= createCodecPool(2);
  return shared;
}
