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
import { frameContentSize, loadZstdCodec } from '../internal/zstd.js';
import type { CodecRequest, CodecResponse, WorkerFailure } from './protocol.js';

type ZlibZstd = {
  zstdCompressSync(buf: Uint8Array, opts: object): Buffer;
  zstdDecompressSync(buf: Uint8Array, opts: object): Buffer;
  constants: { ZSTD_c_compressionLevel: number };
};
const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * V8's `gc()` for this worker, reached without a command-line flag (the flag is set only while
 * a fresh context picks the function up, then cleared). Both codecs hand back a freshly
 * allocated buffer per chunk (node:zlib has no API to write into ours); once its bytes are
 * copied into the caller's shared slot it is garbage, but V8 only collects after tens of MB
 * of such external memory per isolate. A full collection every 12 MiB of such buffers keeps this
 * worker's garbage to a few MB (a millisecond or two: the worker's heap is tiny; measured
 * faster overall, as freed pages are reused instead of new ones faulted in; a young-generation
 * collection did not release the buffers). `undefined` where V8 refuses, which only costs memory.
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
  if (codec === 'node') {
    const z = zlib as unknown as ZlibZstd;
    // NOTE: one output buffer of the frame's bound: no concatenation of 16 KiB pieces.
    return z.zstdCompressSync(input, {
      // NOTE: the frame must declare its content size (the format requires it; zstd-codec
      // readers allocate from it).
      pledgedSrcSize: input.byteLength,
      params: { [z.constants.ZSTD_c_compressionLevel]: level },
      chunkSize: Math.max(64 * 1024, bound(input.byteLength)),
    });
  }
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
    if (req.op === 'compress') {
      const out = await compress(req.codec, req.input, req.level);
      const digest = sha256(out);
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
    const out = await decompress(req.codec, req.input, req.size);
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
      req.into.set(out);
      dropped(out.byteLength);
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
    return { res: { id: req.id, ok: false, error }, transfer: [] };
  }
}

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
  });
});
