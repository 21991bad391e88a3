/**
 * Codec worker: compresses and decompresses single zstd frames with synchronous calls (a worker
 * has nothing else to do; sync calls measured ~15 % faster end to end than async ones with
 * several in flight) and hashes the bytes while they are hot in cache.
 */
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import { EntryCorruptError } from '../errors.js';
import { compressFrameSync, frameContentSize, loadZstdCodec } from '../internal/zstd.js';
import type { CodecRequest, CodecResponse, WorkerFailure } from './protocol.js';

/** A zstd stream's native handle and its result array (node:zlib internals, see `direct`). */
interface ZstdStream {
  _handle?: {
    writeSync(
      flush: number,
      input: Uint8Array,
      inOffset: number,
      inLength: number,
      output: Uint8Array,
      outOffset: number,
      outLength: number,
    ): void;
  };
  /** [output bytes left, input bytes left] after a write. */
  _writeState?: Uint32Array;
  readonly errored: Error | null;
  on(event: 'error', listener: () => void): unknown;
  close(): void;
}
type ZlibZstd = {
  zstdCompressSync(buf: Uint8Array, opts: object): Buffer;
  zstdDecompressSync(buf: Uint8Array, opts: object): Buffer;
  ZstdCompress: new (opts: object) => ZstdStream;
  ZstdDecompress: new (opts: object) => ZstdStream;
  constants: { ZSTD_c_compressionLevel: number; ZSTD_e_end: number };
};
const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * V8's `gc()` for this worker, reached without a command-line flag (the flag is set only while
 * a fresh context picks the function up, then cleared). Used only where a chunk's output is a
 * freshly allocated buffer copied into the caller's slot — zstd-codec, and node:zlib on a Node
 * without the handle `direct` uses: V8 collects such external garbage only after tens of MB per
 * isolate. A full collection every 12 MiB of such buffers keeps it to a few MB (a few ms each:
 * the worker's heap is tiny; a young-generation collection did not release the buffers).
 * `undefined` where V8 refuses, which only costs memory.
 */
const collectGarbage = (() => {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as ((options?: { type: 'minor' | 'major' }) => void) | undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
})();
/** Bytes of codec output allocated since the last collection. */
let garbage = 0;
const GARBAGE_LIMIT = 12 * 1024 * 1024;
const dropped = (n: number) => {
  garbage += n;
  if (garbage < GARBAGE_LIMIT || collectGarbage === undefined) return;
  garbage = 0;
  collectGarbage({ type: 'major' });
};

class Failure extends Error {
  constructor(readonly failure: WorkerFailure) {
    super(failure.message);
  }
}

/**
 * node:zlib's zstd, driven through a stream's native handle so that frames are written straight
 * into the caller's shared slot and decompressed straight into the restore's slot: no output
 * buffer is allocated per chunk (the public one-shot calls allocate one at the frame bound,
 * which piles up as garbage in this thread and fragments the allocator: ~70 MB more peak RSS
 * per 600 chunks here, and 3× slower on incompressible chunks). The handle is the one
 * node:zlib's own sync calls use (`_handle.writeSync`, `_writeState`); where a Node version
 * lacks it, `direct` is false and the public calls are used instead.
 */
const direct = (() => {
  const z = zlib as unknown as Partial<ZlibZstd>;
  if (typeof z.ZstdCompress !== 'function') return false;
  try {
    const s = new z.ZstdCompress({ chunkSize: 64 });
    const ok = typeof s._handle?.writeSync === 'function' && s._writeState instanceof Uint32Array;
    s.close();
    return ok;
  } catch {
    return false;
  }
})();
const ignore = () => {};
const PROBE = new Uint8Array(1);

/** Compresses `input` into `into` (at least the frame bound); returns the frame's length. */
function compressInto(input: Uint8Array, level: number, into: Uint8Array): number {
  const z = zlib as unknown as ZlibZstd;
  const s = new z.ZstdCompress({
    // NOTE: the frame must declare its content size (see compress()).
    pledgedSrcSize: input.byteLength,
    params: { [z.constants.ZSTD_c_compressionLevel]: level },
    chunkSize: 64,
  });
  s.on('error', ignore);
  try {
    s._handle?.writeSync(z.constants.ZSTD_e_end, input, 0, input.byteLength, into, 0, into.byteLength);
    if (s.errored) throw new Failure({ kind: 'other', message: `zstd failed: ${s.errored.message}` });
    const [outLeft, inLeft] = s._writeState as Uint32Array;
    if (inLeft !== 0 || outLeft === 0) {
      throw new Failure({
        kind: 'other',
        message: `compressed chunk does not fit its ${into.byteLength}-byte slot`,
      });
    }
    return into.byteLength - (outLeft as number);
  } finally {
    s.close();
  }
}

/** Decompresses `input` into `into` (at least `size` bytes); returns the bytes written. */
function decompressInto(input: Uint8Array, size: number, into: Uint8Array): number {
  const z = zlib as unknown as ZlibZstd;
  const s = new z.ZstdDecompress({ chunkSize: 64 });
  s.on('error', ignore);
  const invalid = () =>
    new Failure({ kind: 'corrupt', message: `chunk is not valid zstd: ${s.errored?.message}` });
  try {
    const handle = s._handle as NonNullable<ZstdStream['_handle']>;
    handle.writeSync(z.constants.ZSTD_e_end, input, 0, input.byteLength, into, 0, size);
    if (s.errored) throw invalid();
    const [outLeft, inLeft] = s._writeState as Uint32Array;
    if (outLeft === 0) {
      // The declared size is full: one more byte means the chunk is larger than declared.
      handle.writeSync(
        z.constants.ZSTD_e_end,
        input,
        input.byteLength - (inLeft as number),
        inLeft as number,
        PROBE,
        0,
        1,
      );
      if (s.errored) throw invalid();
      if ((s._writeState as Uint32Array)[0] === 0) throw tooLarge(size, size + 1);
    }
    return size - (outLeft as number);
  } finally {
    s.close();
  }
}

/** Upper bound of a zstd frame holding `size` bytes (as entry/format.ts `compressBound`). */
const bound = (size: number) => size + Math.floor(size / 128) + 128 * 1024;

const tooLarge = (limit: number, size: number): Failure =>
  new Failure({
    kind: 'too-large',
    message: `chunk decompresses past its declared size of ${limit} bytes`,
    limit,
    size,
  });

async function compress(codec: 'node' | 'zstd-codec', input: Uint8Array, level: number): Promise<Uint8Array> {
  if (codec === 'node') return compressFrameSync(input, level);
  const out = (await loadZstdCodec()).compress(input, level);
  if (!out) throw new Failure({ kind: 'other', message: 'zstd-codec failed to compress a chunk' });
  return out;
}

async function decompress(
  codec: 'node' | 'zstd-codec',
  input: Uint8Array,
  size: number,
): Promise<Uint8Array> {
  if (codec === 'node') {
    const z = zlib as unknown as ZlibZstd;
    try {
      return z.zstdDecompressSync(input, {
        chunkSize: Math.max(64, size + 1),
        maxOutputLength: Math.max(1, size),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(size, size + 1);
      throw new Failure({ kind: 'corrupt', message: `chunk is not valid zstd: ${(err as Error).message}` });
    }
  }
  // NOTE: zstd-codec allocates the declared content size up front: check it first; frames
  // without a declared size are refused (both writers declare it).
  const declared = frameContentSize(input);
  if (declared === undefined)
    throw new Failure({ kind: 'corrupt', message: 'zstd frame does not declare its content size' });
  if (declared > size) throw tooLarge(size, declared);
  // zstd-codec answers null for an empty frame
  if (declared === 0) return new Uint8Array(0);
  const out = (await loadZstdCodec()).decompress(input);
  if (!out) throw new Failure({ kind: 'corrupt', message: 'chunk is not valid zstd' });
  return out;
}

/** Hands `out` back without copying when it owns a whole (non-pooled) ArrayBuffer. */
function transferable(out: Uint8Array): { output: Uint8Array; transfer: ArrayBuffer[] } {
  const buf = out.buffer;
  if (
    buf instanceof ArrayBuffer &&
    buf.byteLength >= 64 * 1024 &&
    buf.byteLength <= out.byteLength * 2 + 4096
  ) {
    return { output: out, transfer: [buf] };
  }
  const copy = new Uint8Array(out.byteLength);
  copy.set(out);
  return { output: copy, transfer: [copy.buffer] };
}

async function handle(req: CodecRequest): Promise<{ res: CodecResponse; transfer: ArrayBuffer[] }> {
  try {
    if (req.op === 'digest') {
      const length = req.input.byteLength;
      return {
        res: { id: req.id, ok: true, output: new Uint8Array(0), digest: sha256(req.input), length },
        transfer: [],
      };
    }
    if (req.op === 'compress' && req.into !== undefined && req.codec === 'node' && direct) {
      const length = compressInto(req.input, req.level, req.into);
      const digest = req.noDigest ? '' : sha256(req.into.subarray(0, length));
      return { res: { id: req.id, ok: true, output: new Uint8Array(0), digest, length }, transfer: [] };
    }
    if (req.op === 'compress') {
      const out = await compress(req.codec, req.input, req.level);
      const digest = req.noDigest ? '' : sha256(out);
      if (req.into !== undefined) {
        if (out.byteLength > req.into.byteLength) {
          throw new Failure({
            kind: 'other',
            message: `compressed chunk of ${out.byteLength} bytes does not fit its ${req.into.byteLength}-byte slot`,
          });
        }
        // NOTE: the frame goes straight into the caller's shared slot: no buffer crosses threads.
        req.into.set(out);
        // node:zlib's output buffer is allocated at the frame bound, whatever the frame's size.
        dropped(req.codec === 'node' ? Math.max(64 * 1024, bound(req.input.byteLength)) : out.byteLength);
        const length = out.byteLength;
        return { res: { id: req.id, ok: true, output: new Uint8Array(0), digest, length }, transfer: [] };
      }
      const { output, transfer } = transferable(out);
      return { res: { id: req.id, ok: true, output, digest, length: output.byteLength }, transfer };
    }
    // NOTE: the direct path writes unverified bytes into the caller's slot; the caller uses
    // the slot only when this answers ok (after the size and digest checks below).
    const inPlace = req.into !== undefined && req.codec === 'node' && direct;
    const out = inPlace
      ? (req.into as Uint8Array).subarray(0, decompressInto(req.input, req.size, req.into as Uint8Array))
      : await decompress(req.codec, req.input, req.size);
    if (out.byteLength > req.size) throw tooLarge(req.size, out.byteLength);
    if (out.byteLength !== req.size) {
      throw new Failure({
        kind: 'corrupt',
        message: `chunk ${req.index} decompresses to ${out.byteLength} bytes, the config declares ${req.size}`,
      });
    }
    const digest = sha256(out);
    if (digest !== req.digest) {
      throw new Failure({
        kind: 'corrupt',
        message: `chunk ${req.index} has uncompressed digest ${digest}, the config declares ${req.digest}`,
      });
    }
    if (req.into !== undefined) {
      // NOTE: verified bytes go straight into the caller's shared slot: no buffer crosses threads.
      if (!inPlace) {
        req.into.set(out);
        dropped(out.byteLength);
      }
      return {
        res: { id: req.id, ok: true, output: new Uint8Array(0), digest, length: req.size },
        transfer: [],
      };
    }
    const { output, transfer } = transferable(out);
    return { res: { id: req.id, ok: true, output, digest, length: output.byteLength }, transfer };
  } catch (err) {
    const error: WorkerFailure =
      err instanceof Failure
        ? err.failure
        : err instanceof EntryCorruptError // from frameContentSize
          ? { kind: 'corrupt', message: err.message }
          : { kind: 'other', message: (err as Error)?.message ?? String(err) };
    // NOTE: zstd-codec aborts its WebAssembly instance when its heap runs out ("abort(OOM)"),
    // and every later call in this thread would fail: answer, then end the thread (the pool
    // starts a fresh one on the next call).
    if (/\babort\(/.test(error.message)) {
      broken = true;
      return { res: { id: req.id, ok: false, error, fatal: true }, transfer: [] };
    }
    return { res: { id: req.id, ok: false, error }, transfer: [] };
  }
}

let broken = false;

// NOTE: requests are handled one at a time, in order (the sync calls block anyway); the async
// wrapper only matters for zstd-codec's one-time initialization.
let queue: Promise<void> = Promise.resolve();
parentPort?.on('message', (req: CodecRequest) => {
  queue = queue.then(async () => {
    const { res, transfer } = await handle(req);
    try {
      parentPort?.postMessage(res, transfer);
    } catch {
      // NOTE: some Node versions mark zlib's output memory untransferable: send a copy.
      if (res.ok) {
        const output = Uint8Array.from(res.output);
        parentPort?.postMessage({ ...res, output }, [output.buffer]);
      } else parentPort?.postMessage(res);
    }
    if (broken) process.exit(1);
  });
});
