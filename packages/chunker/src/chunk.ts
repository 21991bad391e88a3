import { ChunkerInputError } from './errors.js';
import { Scanner } from './internal/scanner.js';
import { type ChunkOptions, resolveOptions } from './options.js';

/** One content-defined chunk. */
export interface Chunk {
  /** Offset of the chunk's first byte in the input. */
  offset: number;
  /**
   * Length in bytes: within [minSize, maxSize] except for the last chunk (a cut at the first hashed
   * pair gives minSize rounded down to even, i.e. minSize - 1 for an odd minSize, as in the reference).
   */
  length: number;
  /**
   * The 64-bit gear hash at the cut (unsigned), as in the REAPI test vectors; 0 for a last chunk no
   * longer than minSize.
   */
  fingerprint: bigint;
  /**
   * The chunk's bytes; set by {@link chunkStream} only. A chunk that lies inside one source piece is a
   * `subarray` view of that piece (no copy); a chunk spanning pieces is a fresh copy. The chunker
   * never writes into either, so `data` stays valid after the next iteration as long as the source does
   * not reuse its buffers (if it does, copy `data` before asking for the next chunk).
   */
  data?: Uint8Array;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/**
 * Cuts `data` into FastCDC 2020 chunks (REAPI `FastCdc2020Params`): returns offsets, lengths and
 * fingerprints (no `data`: slice the input). An empty input has no chunks.
 *
 * @throws {ChunkerOptionError} an option is invalid (the error's `option` names it).
 * @throws {ChunkerInputError} `data` is not a `Uint8Array`.
 * @throws `options.signal.reason` when the signal is aborted (checked between blocks of 256 KiB).
 */
export function chunkBuffer(data: Uint8Array, options: ChunkOptions = {}): Chunk[] {
  const params = resolveOptions(options);
  if (!(data instanceof Uint8Array)) {
    throw new ChunkerInputError(`data must be a Uint8Array, got ${describe(data)}`);
  }
  const signal = options.signal;
  throwIfAborted(signal);
  const chunks: Chunk[] = [];
  const emit = (start: number, end: number, fingerprint: bigint) => {
    chunks.push({ offset: start, length: end - start, fingerprint });
  };
  const scanner = new Scanner(params);
  try {
    if (signal === undefined) {
      scanner.push(data, emit);
    } else {
      // NOTE: pushing in slices keeps the output identical (the scanner is piece-size agnostic) and
      // lets a long synchronous run notice an abort.
      const step = 4 * 1024 * 1024;
      for (let i = 0; i < data.length; i += step) {
        throwIfAborted(signal);
        scanner.push(data.subarray(i, Math.min(i + step, data.length)), emit);
      }
    }
    scanner.finish(emit);
  } finally {
    scanner.release();
  }
  return chunks;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

type Source = AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

function iteratorOf(source: Source): AsyncIterator<Uint8Array> {
  if (source !== null && typeof source === 'object') {
    const iterable = source as Partial<AsyncIterable<Uint8Array>>;
    const iterate = iterable[Symbol.asyncIterator];
    if (typeof iterate === 'function') return iterate.call(iterable);
    const stream = source as Partial<ReadableStream<Uint8Array>>;
    if (typeof stream.getReader === 'function') {
      const reader = stream.getReader();
      return {
        next: async () => {
          const r = await reader.read();
          return r.done ? { done: true, value: undefined } : { done: false, value: r.value };
        },
        return: async () => {
          await reader.cancel();
          reader.releaseLock();
          return { done: true, value: undefined };
        },
      };
    }
  }
  throw new ChunkerInputError(
    `source must be an AsyncIterable<Uint8Array> or a ReadableStream<Uint8Array>, got ${describe(source)}`,
  );
}

/** Resolves with the next item, or rejects with `signal.reason` as soon as the signal fires. */
function nextOrAbort(
  it: AsyncIterator<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<IteratorResult<Uint8Array>> {
  const next = it.next();
  if (signal === undefined) return next;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    next.then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Cuts a byte stream into FastCDC 2020 chunks, each with its `data`. The chunks are exactly those of
 * {@link chunkBuffer} on the concatenated input, whatever the sizes of the pieces (1 byte to many
 * MiB). It holds at most about 2·`maxSize` bytes plus the current piece (and a 256 KiB scan block):
 * of a piece larger than `maxSize` only the unchunked tail is kept (copied) once the piece is done. Apart
 * from that it copies only chunks that span pieces (see {@link Chunk.data}).
 *
 * Options are validated when the iteration starts. Breaking out of the loop (or an abort) ends the
 * source's iteration (`return()` / reader `cancel()`).
 *
 * @throws {ChunkerOptionError} an option is invalid (the error's `option` names it).
 * @throws {ChunkerInputError} the source is not a stream of `Uint8Array`s.
 * @throws `options.signal.reason` when the signal is aborted, also while waiting for the source.
 */
export async function* chunkStream(source: Source, options: ChunkOptions = {}): AsyncGenerator<Chunk> {
  const params = resolveOptions(options);
  const signal = options.signal;
  throwIfAborted(signal);
  const it = iteratorOf(source);
  const scanner = new Scanner(params);
  // Pieces from the one holding the current chunk's start on; `pieceStarts[i]` is the absolute offset.
  const pieces: Uint8Array[] = [];
  const pieceStarts: number[] = [];
  let head = 0;
  let out: Chunk[] = [];
  const emit = (start: number, end: number, fingerprint: bigint) => {
    while (pieceStarts[head]! + pieces[head]!.length <= start) head++;
    const first = pieces[head]!;
    const firstStart = pieceStarts[head]!;
    let data: Uint8Array;
    if (end <= firstStart + first.length) {
      data = first.subarray(start - firstStart, end - firstStart);
    } else {
      data = Buffer.allocUnsafeSlow(end - start);
      let at = 0;
      for (let i = head; at < data.length; i++) {
        const p = pieces[i]!;
        const from = i === head ? start - firstStart : 0;
        const n = Math.min(p.length - from, data.length - at);
        data.set(p.subarray(from, from + n), at);
        at += n;
      }
    }
    while (head < pieces.length && pieceStarts[head]! + pieces[head]!.length <= end) head++;
    out.push({ offset: start, length: end - start, fingerprint, data });
  };
  let finished = false;
  try {
    for (;;) {
      const r = await nextOrAbort(it, signal);
      if (r.done) break;
      const piece = r.value as unknown;
      if (!(piece instanceof Uint8Array)) {
        throw new ChunkerInputError(`source yielded ${describe(piece)}, expected Uint8Array`);
      }
      throwIfAborted(signal);
      if (piece.length === 0) continue;
      if (pieces.length === 1 && pieces[0]!.length > params.maxSize) {
        // NOTE: of the previous, large piece only the tail after the pending chunk's start is still
        // needed; keeping a copy of it (less than maxSize bytes) instead of the whole piece bounds memory
        // to about 2·maxSize + one piece. Done only once more data comes, so the last chunks of the
        // input stay views.
        const from = scanner.pendingStart - pieceStarts[0]!;
        if (from > 0) {
          pieces[0] = pieces[0]!.slice(from);
          pieceStarts[0] = scanner.pendingStart;
        }
      }
      pieces.push(piece);
      pieceStarts.push(scanner.length);
      scanner.push(piece, emit);
      if (head > 0) {
        pieces.splice(0, head);
        pieceStarts.splice(0, head);
        head = 0;
      }
      if (out.length > 0) {
        const ready = out;
        out = [];
        for (const chunk of ready) {
          yield chunk;
          throwIfAborted(signal);
        }
      }
    }
    finished = true;
    scanner.finish(emit);
    for (const chunk of out) yield chunk;
  } finally {
    scanner.release();
    if (!finished) {
      // NOTE: after an abort a next() may still be pending, and an async generator queues return()
      // behind it, so do not wait for the source then; cleanup errors never mask the original one.
      const closing = Promise.resolve()
        .then(() => it.return?.())
        .catch(() => undefined);
      if (!signal?.aborted) await closing;
    }
  }
}
