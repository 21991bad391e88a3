/**
 * The zstd codec behind a small interface, so the pipeline does not care which implementation
 * runs (and a later issue can move it into worker threads). Two implementations read what either
 * writes: Node's built-in `node:zlib` zstd (Node >= 22.15) and the `zstd-codec` WebAssembly build
 * (older Node). Their compressed bytes differ; the entry config records each chunk's uncompressed
 * digest for that reason.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { EntryCorruptError, EntryTooLargeError, InvalidOptionError } from '../errors.js';

/** Which zstd implementation to use; `auto` picks `node` when `node:zlib` has zstd. */
export type ZstdCodecName = 'auto' | 'node' | 'zstd-codec';

/** Compresses and decompresses single zstd frames (one per chunk). */
export interface ZstdCodec {
  readonly name: 'node' | 'zstd-codec';
  compress(data: Uint8Array, level: number): Promise<Uint8Array>;
  /**
   * Decompresses `data`, never producing more than `maxSize` bytes: a frame that would is
   * stopped with {@link EntryTooLargeError}; garbage throws {@link EntryCorruptError}.
   */
  decompress(data: Uint8Array, maxSize: number): Promise<Uint8Array>;
}

// NOTE: with the 16 KiB default chunkSize node:zlib decompresses 1 MiB chunks ~5x slower.
const NODE_CHUNK_SIZE = 4 * 1024 * 1024;

type ZlibZstd = {
  zstdCompress(buf: Uint8Array, opts: object, cb: (err: Error | null, out: Buffer) => void): void;
  zstdDecompress(buf: Uint8Array, opts: object, cb: (err: Error | null, out: Buffer) => void): void;
  constants: { ZSTD_c_compressionLevel: number };
};

/**
 * Compresses one chunk into one zstd frame with node:zlib, synchronously: the codec worker's
 * compression (workers/codec.worker.ts) and the small save's on the calling thread
 * (entry/save-chunks.ts), so that both store byte-identical frames. The frame declares its
 * content size (the format requires it; zstd-codec readers allocate from it); the output is one
 * buffer of the frame's bound (no concatenation of 16 KiB pieces).
 */
export function compressFrameSync(input: Uint8Array, level: number): Buffer {
  const z = zlib as unknown as {
    zstdCompressSync(buf: Uint8Array, opts: object): Buffer;
    constants: { ZSTD_c_compressionLevel: number };
  };
  return z.zstdCompressSync(input, {
    pledgedSrcSize: input.byteLength,
    params: { [z.constants.ZSTD_c_compressionLevel]: level },
    chunkSize: Math.max(64 * 1024, input.byteLength + Math.floor(input.byteLength / 128) + 128 * 1024),
  });
}

/** `true` when this Node has zstd in `node:zlib`. */
export function hasNodeZstd(): boolean {
  return typeof (zlib as unknown as Partial<ZlibZstd>).zstdCompress === 'function';
}

function nodeCodec(): ZstdCodec {
  const z = zlib as unknown as ZlibZstd;
  return {
    name: 'node',
    compress(data, level) {
      return new Promise((resolve, reject) => {
        z.zstdCompress(
          data,
          {
            // NOTE: without pledgedSrcSize the streaming encoder omits Frame_Content_Size, which
            // the zstd-codec reader needs (the format requires it).
            pledgedSrcSize: data.byteLength,
            params: { [z.constants.ZSTD_c_compressionLevel]: level },
            chunkSize: Math.max(NODE_CHUNK_SIZE, data.byteLength + 1024),
          },
          (err, out) => (err ? reject(err) : resolve(out)),
        );
      });
    },
    decompress(data, maxSize) {
      return new Promise((resolve, reject) => {
        z.zstdDecompress(
          data,
          {
            chunkSize: Math.min(NODE_CHUNK_SIZE, Math.max(64 * 1024, maxSize + 1)),
            maxOutputLength: Math.max(1, maxSize),
          },
          (err, out) => {
            if (!err) {
              if (out.byteLength > maxSize) reject(tooLarge(maxSize, out.byteLength));
              else resolve(out);
            } else if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
              reject(tooLarge(maxSize, maxSize + 1, err));
            } else {
              reject(new EntryCorruptError(`chunk is not valid zstd: ${err.message}`, { cause: err }));
            }
          },
        );
      });
    },
  };
}

function tooLarge(limit: number, size: number, cause?: unknown): EntryTooLargeError {
  return new EntryTooLargeError(`chunk decompresses past its declared size of ${limit} bytes`, {
    limit,
    size,
    cause,
  });
}

/**
 * Reads the Frame_Content_Size of the first zstd frame (RFC 8878 3.1.1.1), or `undefined`
 * when the frame does not declare it. Throws on a non-zstd header.
 */
export function frameContentSize(data: Uint8Array): number | undefined {
  if (data.byteLength < 6 || data[0] !== 0x28 || data[1] !== 0xb5 || data[2] !== 0x2f || data[3] !== 0xfd) {
    throw new EntryCorruptError('chunk is not a zstd frame');
  }
  const fhd = data[4] as number;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictIdFlag = fhd & 3;
  let pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictIdFlag]!;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  if (fcsSize === 0) return undefined;
  if (data.byteLength < pos + fcsSize) throw new EntryCorruptError('zstd frame header is truncated');
  let value = 0;
  for (let i = fcsSize - 1; i >= 0; i--) value = value * 256 + (data[pos + i] as number);
  pos += fcsSize;
  return fcsSize === 2 ? value + 256 : value;
}

/**
 * Largest chunk the zstd-codec build (the Node < 22.15 codec) can compress or decompress: its
 * WebAssembly heap is fixed, and a 6 MiB chunk already aborts it with OOM (measured). FastCDC's
 * largest chunk is 4 × the average, so the default 1 MiB average fits.
 */
export const ZSTD_CODEC_MAX_CHUNK = 4 * 1024 * 1024;

/** zstd-codec's synchronous API. */
export type ZstdSimple = {
  compress(data: Uint8Array, level: number): Uint8Array | null;
  decompress(data: Uint8Array): Uint8Array | null;
};

let zstdCodecPromise: Promise<ZstdSimple> | undefined;

/** Loads zstd-codec's synchronous API once per thread (the Node 20 path). */
export function loadZstdCodec(): Promise<ZstdSimple> {
  zstdCodecPromise ??= new Promise((resolve, reject) => {
    try {
      const require = createRequire(import.meta.url);
      const { ZstdCodec } = require('zstd-codec') as {
        ZstdCodec: { run(cb: (z: { Simple: new () => ZstdSimple }) => void): void };
      };
      ZstdCodec.run((z) => resolve(new z.Simple()));
    } catch (err) {
      reject(err);
    }
  });
  return zstdCodecPromise;
}

/**
 * Frames up to this size decompress with `fzstd` (plain JavaScript) on the `zstd-codec` path:
 * zstd-codec's WebAssembly set-up costs a fresh process ~35–150 ms before its first frame, more
 * than a small entry's whole restore (issue 14); for larger frames the WebAssembly build is faster.
 */
export const JS_DECODE_MAX = 512 * 1024;

type Fzstd = { decompress(data: Uint8Array, out?: Uint8Array): Uint8Array };
let fzstdPromise: Promise<Fzstd> | undefined;
const loadFzstd = () => {
  fzstdPromise ??= import('fzstd') as Promise<Fzstd>;
  return fzstdPromise;
};

/** Decompresses a small frame of `declared` bytes with fzstd into a buffer of exactly that size. */
async function decompressSmall(data: Uint8Array, declared: number): Promise<Uint8Array> {
  const { decompress } = await loadFzstd();
  let out: Uint8Array;
  try {
    out = decompress(data, new Uint8Array(declared));
  } catch (err) {
    throw new EntryCorruptError(`chunk is not valid zstd: ${(err as Error).message}`, { cause: err });
  }
  if (out.byteLength !== declared)
    throw new EntryCorruptError(
      `zstd frame decompresses to ${out.byteLength} bytes, it declares ${declared}`,
    );
  return out;
}

function wasmCodec(): ZstdCodec {
  return {
    name: 'zstd-codec',
    async compress(data, level) {
      const simple = await loadZstdCodec();
      const out = simple.compress(data, level);
      if (!out) throw new Error('zstd-codec failed to compress a chunk');
      return out;
    },
    async decompress(data, maxSize) {
      // NOTE: zstd-codec allocates the declared content size up front, so check it before
      // decompressing; frames without a declared size are refused (both writers declare it).
      const declared = frameContentSize(data);
      if (declared === undefined) throw new EntryCorruptError('zstd frame does not declare its content size');
      if (declared > maxSize) throw tooLarge(maxSize, declared);
      // zstd-codec answers null for an empty frame
      if (declared === 0) return new Uint8Array(0);
      if (declared <= JS_DECODE_MAX) return decompressSmall(data, declared);
      const simple = await loadZstdCodec();
      const out = simple.decompress(data);
      if (!out) throw new EntryCorruptError('chunk is not valid zstd');
      if (out.byteLength > maxSize) throw tooLarge(maxSize, out.byteLength);
      return out;
    },
  };
}

/** Returns the codec named `name` (`auto`: `node` when available, else `zstd-codec`). */
export function getZstdCodec(name: ZstdCodecName = 'auto'): ZstdCodec {
  if (name === 'node' || (name === 'auto' && hasNodeZstd())) {
    if (!hasNodeZstd()) {
      throw new InvalidOptionError(
        'codec',
        `"node" needs node:zlib zstd (Node >= 22.15); this is Node ${process.versions.node}`,
      );
    }
    return nodeCodec();
  }
  if (name === 'auto' || name === 'zstd-codec') return wasmCodec();
  throw new InvalidOptionError(
    'codec',
    `expected "auto", "node" or "zstd-codec", got ${JSON.stringify(name)}`,
  );
}
