/**
 * Main-thread side of the pack worker: starts a pack job and hands out its chunks, in stream
 * order, as views of shared slots. Memory is bounded by the slots: the worker waits for a free
 * one, so a slow consumer (compression, upload) slows packing instead of buffering.
 */
import type { Worker } from 'node:worker_threads';
import { failureToError } from './errors.js';
import { CTRL_ABORT, CTRL_FREE, CTRL_STATES, type PackRequest, type PackResponse } from './protocol.js';
import { spawnWorker } from './spawn.js';

/** One chunk of the tar stream, held in a shared slot until {@link PackedChunk.release}. */
export interface PackedChunk {
  /** The chunk's bytes: a view of shared memory, valid until `release()`. */
  data: Uint8Array;
  /** `sha256:` digest of `data`. */
  digest: string;
  /** Gives the slot back to the packer (call exactly once, when `data` is no longer read). */
  release(): void;
}

/** Options of {@link packChunks}. */
export interface PackChunksOptions {
  dir: string;
  generates: readonly string[];
  keepMtimes: boolean;
  chunking: PackRequest['chunking'];
  /** Chunks that may be held at once (slots). @default 6 */
  slots?: number;
  /**
   * Hashes a chunk elsewhere (e.g. a codec worker) instead of on the pack worker's thread, which
   * then only reads and cuts: hashing starts as soon as a chunk is cut and overlaps the next cut.
   * @default the pack worker hashes each chunk itself
   */
  digest?: (data: Uint8Array) => Promise<string>;
  signal?: AbortSignal;
}

/** A running pack job. */
export interface PackJob {
  chunks: AsyncIterable<PackedChunk>;
  /** Filled in when the job is done. */
  stats: { files: number; entries: number; size: number };
  /** Stops the worker's job (it exits at the next file or slot wait). */
  abort(): void;
}

const idle: Worker[] = [];
let nextId = 1;

function takeWorker(): Worker {
  const w = idle.pop() ?? spawnWorker('pack');
  w.ref();
  return w;
}

function giveBack(w: Worker): void {
  w.unref();
  w.removeAllListeners('message');
  w.removeAllListeners('error');
  w.removeAllListeners('exit');
  if (idle.length < 2) idle.push(w);
  else void w.terminate();
}

/** Starts packing `dir`'s outputs into FastCDC chunks in a worker thread. */
export function packChunks(o: PackChunksOptions): PackJob {
  const slotCount = o.slots ?? 6;
  const slotSize = o.chunking.maxSize;
  const slots = new SharedArrayBuffer(slotSize * slotCount);
  const control = new SharedArrayBuffer(4 * (CTRL_STATES + slotCount));
  const ctrl = new Int32Array(control);
  ctrl[CTRL_FREE] = slotCount;
  const id = nextId++;
  const stats = { files: 0, entries: 0, size: 0 };

  // A tiny queue between the worker's messages and the async iterator.
  const queue: PackResponse[] = [];
  // With `o.digest`: each chunk's digest, started when its message arrives.
  const digests = new Map<PackResponse, Promise<string>>();
  let wake: (() => void) | undefined;
  let failed: unknown;
  let finished = false;
  const worker = takeWorker();
  const onMessage = (m: PackResponse) => {
    if (m.id !== id) return;
    if (m.op === 'chunk' && o.digest !== undefined) {
      const p = o.digest(new Uint8Array(slots, m.slot * slotSize, m.length));
      // Awaited when the chunk is handed out; a job stopped early never asks.
      p.catch(() => {});
      digests.set(m, p);
    }
    queue.push(m);
    wake?.();
  };
  const onError = (err: unknown) => {
    failed ??= err;
    finished = true;
    wake?.();
  };
  worker.on('message', onMessage);
  worker.on('error', onError);
  worker.on('exit', (code) => onError(new Error(`pack worker exited with code ${code}`)));

  const abort = () => {
    Atomics.store(ctrl, CTRL_ABORT, 1);
    Atomics.notify(ctrl, CTRL_FREE);
  };
  const onSignal = () => abort();
  o.signal?.addEventListener('abort', onSignal, { once: true });

  const req: PackRequest = {
    op: 'pack',
    id,
    dir: o.dir,
    generates: [...o.generates],
    keepMtimes: o.keepMtimes,
    chunking: o.chunking,
    slots,
    slotSize,
    slotCount,
    control,
    ...(o.digest !== undefined ? { noDigest: true } : {}),
  };
  worker.postMessage(req);

  const release = (slot: number) => {
    Atomics.store(ctrl, CTRL_STATES + slot, 0);
    Atomics.add(ctrl, CTRL_FREE, 1);
    Atomics.notify(ctrl, CTRL_FREE);
  };

  async function* chunks(): AsyncGenerator<PackedChunk> {
    let ended = false;
    try {
      for (;;) {
        const m = queue.shift();
        if (m === undefined) {
          if (finished) throw failed ?? new Error('pack worker stopped');
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        if (m.op === 'chunk') {
          let released = false;
          const pending = digests.get(m);
          digests.delete(m);
          const digest = pending === undefined ? m.digest : await pending;
          yield {
            data: new Uint8Array(slots, m.slot * slotSize, m.length),
            digest,
            release: () => {
              if (released) return;
              released = true;
              release(m.slot);
            },
          };
        } else if (m.op === 'done') {
          stats.files = m.files;
          stats.entries = m.entries;
          stats.size = m.size;
          ended = true;
          return;
        } else {
          ended = true;
          if (m.error.kind === 'aborted' && o.signal?.aborted) throw o.signal.reason;
          throw failureToError(m.error);
        }
      }
    } finally {
      o.signal?.removeEventListener('abort', onSignal);
      if (!ended && !finished) {
        // Stopped early: stop the job and wait for its last message before reusing the worker.
        abort();
        while (!finished) {
          const m = queue.shift();
          if (m === undefined) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
            continue;
          }
          if (m.op === 'done' || m.op === 'error') break;
        }
      }
      if (!finished) giveBack(worker);
    }
  }

  return { chunks: chunks(), stats, abort };
}
