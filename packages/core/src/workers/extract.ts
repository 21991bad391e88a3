/**
 * Main-thread side of the extract worker: feeds the entry's uncompressed archive, in order, to
 * a worker that writes it into the staging directory. At most a few pieces are in flight, so
 * a slow disk slows the download instead of buffering it.
 */
import type { Worker } from 'node:worker_threads';
import type { ExtractedEntry } from '../internal/tar-extract.js';
import { failureToError } from './errors.js';
import type { ExtractRequest, ExtractResponse } from './protocol.js';
import { spawnWorker } from './spawn.js';

/** Options of {@link extractInWorker}. */
export interface WorkerExtractOptions {
  generates: readonly string[];
  keepMtimes: boolean;
  signal?: AbortSignal;
  /** Called when extraction fails, to stop the producer of `source` promptly. */
  onFail?: (err: unknown) => void;
  /** Pieces sent but not yet written. @default 4 */
  window?: number;
  /**
   * Called with each piece of shared memory once the worker no longer reads it (written, or the
   * extraction stopped), in the order they came. Such pieces are read in place, not copied.
   */
  onWritten?: (piece: Uint8Array) => void;
}

const idle: Worker[] = [];
let nextId = 1;

/**
 * Extracts `source` into `staging` in a worker thread; resolves the entries written, in archive
 * order. Pieces of `source` are transferred to the worker: the caller must not reuse them.
 * @throws {EntryRefusedError | EntryCorruptError} for paths refused by `safePath` (internal/tar-extract.ts) and the checks of the extract worker.
 */
export async function extractInWorker(
  staging: string,
  source: AsyncIterable<Uint8Array>,
  options: WorkerExtractOptions,
): Promise<ExtractedEntry[]> {
  const worker = idle.pop() ?? spawnWorker('extract');
  worker.ref();
  const id = nextId++;
  const window = options.window ?? 4;
  let unacked = 0;
  let aborted = false;
  // Shared-memory pieces the worker may still read, oldest first (acks come in order).
  const shared: Array<Uint8Array | undefined> = [];
  const written = () => {
    const piece = shared.shift();
    if (piece !== undefined) options.onWritten?.(piece);
  };
  let result: ExtractedEntry[] | undefined;
  let failure: { err: unknown } | undefined;
  let wake: (() => void) | undefined;
  let crashed = false;
  const onMessage = (m: ExtractResponse) => {
    if (m.id !== id) return;
    if (m.op === 'ack') {
      unacked--;
      written();
    } else if (m.op === 'aborted') aborted = true;
    else if (m.op === 'done') {
      result = m.entries.map((e) => ({
        path: e.path,
        type: e.type,
        mode: e.mode,
        mtime: e.mtimeMs === undefined ? undefined : new Date(e.mtimeMs),
        ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
      }));
    } else failure ??= { err: failureToError(m.error) };
    wake?.();
  };
  const onCrash = (err: unknown) => {
    crashed = true;
    failure ??= { err };
    wake?.();
  };
  const onExit = (code: number) => onCrash(new Error(`extract worker exited with code ${code}`));
  worker.on('message', onMessage);
  worker.on('error', onCrash);
  worker.on('exit', onExit);
  const wait = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
    }).then(() => {
      wake = undefined;
    });
  const onAbort = () => {
    failure ??= { err: options.signal?.reason };
    wake?.();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const send = (m: ExtractRequest, transfer: ArrayBuffer[] = []) => worker.postMessage(m, transfer);
  const { generates, keepMtimes } = options;
  send({ op: 'start', id, staging, generates: [...generates], keepMtimes });
  try {
    for await (const piece of source) {
      options.signal?.throwIfAborted();
      if (failure) break;
      // NOTE: a piece that owns its (non-pooled) buffer is transferred; views of shared or
      // pooled memory are copied.
      const owns =
        piece.buffer instanceof ArrayBuffer &&
        piece.buffer.byteLength >= 64 * 1024 &&
        piece.buffer.byteLength <= piece.byteLength + 64 * 1024;
      unacked++;
      if (piece.buffer instanceof SharedArrayBuffer) {
        shared.push(piece);
        send({ op: 'data', id, bytes: piece });
      } else {
        shared.push(undefined);
        const bytes = owns ? piece : Uint8Array.from(piece);
        send({ op: 'data', id, bytes }, [bytes.buffer as ArrayBuffer]);
      }
      while (unacked >= window && !failure) await wait();
    }
    if (!failure) {
      options.signal?.throwIfAborted();
      send({ op: 'end', id });
      while (result === undefined && !failure) await wait();
    }
    if (failure) throw failure.err;
    return result as ExtractedEntry[];
  } catch (err) {
    options.onFail?.(err);
    if (!crashed) {
      // Wait until the worker stopped: it must not write into staging (or read a shared piece)
      // after this returns.
      send({ op: 'abort', id });
      while (!aborted && !crashed) await wait();
    }
    throw failure?.err ?? err;
  } finally {
    while (shared.length > 0) written();
    options.signal?.removeEventListener('abort', onAbort);
    worker.off('message', onMessage);
    worker.off('error', onCrash);
    worker.off('exit', onExit);
    worker.unref();
    if (!crashed) {
      if (idle.length < 2) idle.push(worker);
      else void worker.terminate();
    }
  }
}
