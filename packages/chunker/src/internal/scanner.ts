import type { ResolvedParams } from '../options.js';
import { acquireKernel, BLOCK_SIZE, DATA_BASE, type Kernel, releaseKernel } from './kernel.js';

/** Receives each chunk as it is cut: absolute [start, end) and the gear fingerprint at the cut. */
export type EmitChunk = (start: number, end: number, fingerprint: bigint) => void;

/**
 * Incremental FastCDC 2020 cutter over a sequence of byte pieces. The pieces may be of any size: the
 * kernel's hash state carries over, and only the bytes that are hashed (from min, rounded down to
 * even, of each chunk) are copied into the kernel's block.
 *
 * NOTE: why streaming needs no look-ahead: the REAPI rule "small mask while i < min(avg, remaining)"
 * equals "small mask while i < avg" for every pair that exists (i + 1 < remaining), and the pair loop's
 * bound `i + 2 <= min(remaining, max)` only needs the bytes seen so far, so a cut is final when found.
 */
export class Scanner {
  private readonly kernel: Kernel;
  private readonly block: Uint8Array;
  private readonly minEven: number;
  private readonly avg: number;
  private readonly max: number;
  /** Absolute offset where the current chunk starts. */
  private chunkStart = 0;
  /** Absolute offset of the next byte pair to hash. */
  private scanPos: number;
  /** The block holds the absolute bytes [blockBase, blockBase + blockFill). */
  private blockBase = 0;
  private blockFill = 0;
  /** Bytes pushed so far. */
  private total = 0;
  private released = false;

  constructor(params: ResolvedParams) {
    this.kernel = acquireKernel();
    this.kernel.configure(params.seed, params.maskSmall, params.maskLarge);
    this.block = this.kernel.block;
    this.minEven = params.minSize & ~1;
    this.avg = params.avgSize;
    this.max = params.maxSize;
    this.scanPos = this.minEven;
  }

  /** Bytes pushed so far. */
  get length(): number {
    return this.total;
  }

  /** Absolute offset where the current (not yet emitted) chunk starts. */
  get pendingStart(): number {
    return this.chunkStart;
  }

  /** Feeds the next piece; emits every chunk whose end is now known. */
  push(piece: Uint8Array, emit: EmitChunk): void {
    const ps = this.total;
    const pe = ps + piece.length;
    this.total = pe;
    const k = this.kernel.exports;
    const block = this.block;
    for (;;) {
      const limit = this.chunkStart + this.max;
      if (this.scanPos + 2 > limit) {
        // No pair left below max: the chunk is max long once the data reaches it.
        if (pe < limit) break;
        emit(this.chunkStart, limit, BigInt.asUintN(64, k.hash.value));
        this.startChunk(limit);
        continue;
      }
      if (this.scanPos + 2 > pe) break;
      let blockEnd = this.blockBase + this.blockFill;
      if (this.scanPos + 2 > blockEnd) {
        // Refill the block from scanPos; at most one byte (an unpaired one) comes from the old block.
        let keep = 0;
        if (this.scanPos >= this.blockBase && this.scanPos < blockEnd) {
          keep = blockEnd - this.scanPos;
          block[0] = block[this.scanPos - this.blockBase]!;
        }
        this.blockBase = this.scanPos;
        const from = this.scanPos + keep - ps;
        const n = Math.min(BLOCK_SIZE - keep, pe - ps - from);
        block.set(from === 0 && n === piece.length ? piece : piece.subarray(from, from + n), keep);
        this.blockFill = keep + n;
        blockEnd = this.blockBase + this.blockFill;
      }
      const base = DATA_BASE - this.blockBase;
      const switchAt = Math.max(0, this.chunkStart + this.avg + base);
      const stop = Math.min(blockEnd, limit) + base;
      const cut = k.scan(this.scanPos + base, switchAt, stop);
      if (cut !== 0) {
        const end = cut - base;
        emit(this.chunkStart, end, BigInt.asUintN(64, k.hash.value));
        this.startChunk(end);
      } else {
        this.scanPos = k.pos.value - base;
      }
    }
    // Keep an unpaired last byte for the next piece (it may not have been copied into the block).
    const inBlock = this.scanPos >= this.blockBase && this.scanPos < this.blockBase + this.blockFill;
    if (this.scanPos === pe - 1 && !inBlock) {
      block[0] = piece[piece.length - 1]!;
      this.blockBase = this.scanPos;
      this.blockFill = 1;
    }
  }

  /** Ends the input: emits the last chunk (if any bytes remain) and releases the kernel. */
  finish(emit: EmitChunk): void {
    if (this.chunkStart < this.total) {
      emit(this.chunkStart, this.total, BigInt.asUintN(64, this.kernel.exports.hash.value));
      this.chunkStart = this.total;
    }
    this.release();
  }

  /** Gives the kernel back (idempotent); the scanner is unusable afterwards. */
  release(): void {
    if (!this.released) {
      this.released = true;
      releaseKernel(this.kernel);
    }
  }

  private startChunk(at: number): void {
    this.chunkStart = at;
    this.scanPos = at + this.minEven;
    this.kernel.exports.reset(0n);
  }
}
