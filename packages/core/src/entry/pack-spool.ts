/**
 * One pack being written (docs/format.md §11.1): zstd frames appended in stream order, hashed as
 * they come, held in memory while small and spooled to a temporary file beyond that, so a pack
 * (up to 64 MiB of data) is never held whole in memory. A pack's digest is known only once its
 * last frame is in; it is then uploaded from the spool (a replayable body).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobBody, Descriptor } from '@task-cache/oci';
import { PACK_MEDIA_TYPE, PACKING } from './format.js';

/** The sizes of a packing rule (a store's blob cap may lower {@link PACKING}'s). */
export interface PackRule {
  minSize: number;
  maxSize: number;
  mask: number;
}

/**
 * The packing rule for a store that accepts blobs of at most `maxBlob` bytes: {@link PACKING}, with
 * the maximum lowered so that a pack's frames (zstd adds at most 1/128 plus a little) stay below
 * the cap, and the minimum at most half the maximum.
 */
export function packRule(maxBlob: number | undefined): PackRule {
  if (maxBlob === undefined || !Number.isFinite(maxBlob)) return { ...PACKING };
  const maxSize = Math.max(
    64 * 1024,
    Math.min(PACKING.maxSize, Math.floor(((maxBlob - 64 * 1024) * 128) / 129)),
  );
  return { minSize: Math.min(PACKING.minSize, Math.floor(maxSize / 2)), maxSize, mask: PACKING.mask };
}

/** A finished pack: its descriptor and a replayable body; `dispose` removes its spool. */
export interface FinishedPack {
  descriptor: Descriptor;
  body: BlobBody;
  dispose(): Promise<void>;
}

/** A pack being filled. */
export class PackSpool {
  /** Uncompressed bytes of the chunks in the pack (what the packing rule counts). */
  uncompressed = 0;
  /** Compressed bytes written (the offset of the next frame). */
  size = 0;
  private readonly hash: Hash = createHash('sha256');
  private parts: Buffer[] = [];
  private file: FileHandle | undefined;

  /**
   * @param path where the pack spools once it outgrows `inMemory`
   * @param rule the packing rule's sizes (docs/format.md §11.1)
   * @param inMemory compressed bytes kept in memory before the pack spools to `path`: a small
   *   save's whole pack (bounded by its `inlineBelow`), 0 for large saves (measured: a 4 MiB
   *   in-memory head per pack added ~20 MB of peak RSS to a 256 MB save)
   */
  constructor(
    private readonly path: string,
    private readonly rule: PackRule = PACKING,
    private readonly inMemory = 0,
  ) {}

  /**
   * Appends a frame (copied or written before this resolves: the caller may reuse `frame`);
   * resolves the frame's offset in the pack.
   */
  async append(frame: Uint8Array, uncompressed: number): Promise<number> {
    const offset = this.size;
    this.hash.update(frame);
    this.size += frame.byteLength;
    this.uncompressed += uncompressed;
    if (this.file === undefined && this.size <= this.inMemory) {
      this.parts.push(Buffer.from(frame));
      return offset;
    }
    if (this.file === undefined) {
      this.file = await open(this.path, 'w', 0o600);
      const held = Buffer.concat(this.parts);
      this.parts = [];
      await this.file.write(held, 0, held.byteLength);
    }
    await this.file.write(frame, 0, frame.byteLength);
    return offset;
  }

  /** `true` when a chunk of `size` bytes would take the pack above the maximum. */
  wouldOverflow(size: number): boolean {
    return this.uncompressed > 0 && this.uncompressed + size > this.rule.maxSize;
  }

  /**
   * `true` when the pack closes after the chunk of uncompressed sha256 `digest`: it holds the
   * minimum and the digest's first byte is below the mask (docs/format.md §11.1).
   */
  closesAfter(digest: string): boolean {
    if (this.uncompressed < this.rule.minSize) return false;
    const firstByte = Number.parseInt(digest.slice(7, 9), 16);
    return firstByte < this.rule.mask;
  }

  /** Ends the pack: its descriptor, a body to upload (as many times as needed), and clean-up. */
  async finish(): Promise<FinishedPack> {
    const descriptor: Descriptor = {
      mediaType: PACK_MEDIA_TYPE,
      digest: `sha256:${this.hash.digest('hex')}`,
      size: this.size,
    };
    if (this.file === undefined) {
      const bytes = Buffer.concat(this.parts);
      this.parts = [];
      return { descriptor, body: bytes, dispose: async () => {} };
    }
    await this.file.close();
    this.file = undefined;
    const path = this.path;
    return {
      descriptor,
      body: () => createReadStream(path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Uint8Array>,
      dispose: () => rm(path, { force: true }),
    };
  }

  /** Drops the pack (a failed save): closes and removes the spool. */
  async discard(): Promise<void> {
    this.parts = [];
    const file = this.file;
    this.file = undefined;
    await file?.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}

/** The spool path of pack number `n` in `dir`. */
export function spoolPath(dir: string, n: number): string {
  return join(dir, `pack-${n}`);
}
