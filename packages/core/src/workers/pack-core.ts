/**
 * The pack itself, shared by the pack worker (pack.worker.ts) and the save of a small entry on
 * the calling thread (entry/save-chunks.ts, issue 14): lists the outputs, writes the entry's
 * normalized tar stream (byte-identical to the tar-stream packer: same header encoder) straight
 * into one window buffer with synchronous reads, cuts it with FastCDC 2020 and hands each chunk,
 * with its sha256, to `emit`. One implementation, so both paths produce the same chunks.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { chunkBuffer } from '@task-cache/chunker';
import { symlinkStaysInside } from '../internal/outputs.js';
import { Failure } from './failure.js';
import type { PackOutput, PackRequest } from './protocol.js';
import { tarHeaders as headers, type TarHeaderIn } from './tar-headers.js';
import { listOutputsSync } from './walk.js';

/** What {@link packSync} packs. */
export interface PackSyncInput {
  dir: string;
  generates: readonly string[];
  keepMtimes: boolean;
  chunking: PackRequest['chunking'];
  /** The outputs, when the caller listed them already (as `listOutputsSync`). */
  outputs?: readonly PackOutput[];
  /** The window buffer to reuse (at least `windowSize(chunking)` bytes); a fresh one otherwise. */
  window?: Buffer;
  /** Emit an empty digest: the caller hashes the chunks elsewhere. @default false */
  noDigest?: boolean;
}

/** What a pack produced. */
export interface PackStats {
  files: number;
  entries: number;
  size: number;
}

const ZEROS = new Uint8Array(1024);
const scratch = Buffer.allocUnsafe(1);

/** Size of the window buffer for `chunking`. */
export const windowSize = (chunking: PackRequest['chunking']): number =>
  Math.max(4 * chunking.maxSize, 256 * 1024);

/**
 * Packs `req.dir`'s outputs; calls `emit` with each chunk (a view of the window, valid only
 * during the call) and its `sha256:` digest, in stream order. `aborted` is polled per file.
 *
 * @throws {Failure} for outputs an entry cannot hold or an abort; file-system errors as they come.
 */
export function packSync(
  req: PackSyncInput,
  emit: (data: Uint8Array, digest: string) => void,
  aborted: () => boolean,
): PackStats {
  const { maxSize } = req.chunking;
  const win = req.window ?? Buffer.allocUnsafeSlow(windowSize(req.chunking));
  let filled = 0;
  let total = 0;
  const checkAbort = () => {
    if (aborted()) throw new Failure({ kind: 'aborted', message: 'pack aborted' });
  };

  const out = (data: Uint8Array) => {
    total += data.byteLength;
    emit(data, req.noDigest ? '' : `sha256:${createHash('sha256').update(data).digest('hex')}`);
  };

  /** Cuts the window; emits every chunk whose end cannot change any more (all of them at EOF). */
  const cut = (eof: boolean) => {
    if (filled === 0) return;
    const view = win.subarray(0, filled);
    const chunks = chunkBuffer(view, req.chunking);
    let consumed = 0;
    for (const c of chunks) {
      // A chunk's cut depends only on the bytes in [offset, offset + maxSize).
      if (!eof && c.offset + maxSize > filled) break;
      out(view.subarray(c.offset, c.offset + c.length));
      consumed = c.offset + c.length;
    }
    if (consumed > 0) {
      win.copyWithin(0, consumed, filled);
      filled -= consumed;
    }
  };

  const append = (bytes: Uint8Array) => {
    let pos = 0;
    while (pos < bytes.byteLength) {
      if (filled === win.byteLength) cut(false);
      const n = Math.min(win.byteLength - filled, bytes.byteLength - pos);
      win.set(bytes.subarray(pos, pos + n), filled);
      filled += n;
      pos += n;
    }
  };

  const pad = (n: number) => {
    const rest = n & 511;
    if (rest) append(ZEROS.subarray(0, 512 - rest));
  };

  const header = (h: TarHeaderIn) => {
    const plain = headers.encode(h);
    if (plain) {
      append(plain);
      return;
    }
    // As tar-stream's Pack#_encodePax.
    const pax = headers.encodePax({ name: h.name, linkname: h.linkname });
    const ph: TarHeaderIn = {
      name: 'PaxHeader',
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      size: pax.byteLength,
      mtime: h.mtime,
      type: 'pax-header',
      uname: h.uname,
      gname: h.gname,
    };
    if (h.linkname) ph.linkname = 'PaxHeader';
    append(headers.encode(ph) as Uint8Array);
    append(pax);
    pad(pax.byteLength);
    append(headers.encode({ ...ph, size: h.size, type: h.type }) as Uint8Array);
  };

  const changed = (path: string) =>
    new Failure({
      kind: 'outputs',
      message: `output ${JSON.stringify(path)} changed size while it was being saved`,
      path,
    });

  const readFileInto = (o: PackOutput) => {
    const fd = openSync(join(req.dir, o.path), 'r');
    try {
      let left = o.size;
      while (left > 0) {
        if (filled === win.byteLength) cut(false);
        const n = readSync(fd, win, filled, Math.min(win.byteLength - filled, left), null);
        if (n === 0) throw changed(o.path);
        filled += n;
        left -= n;
      }
      if (readSync(fd, scratch, 0, 1, null) !== 0) throw changed(o.path);
    } finally {
      closeSync(fd);
    }
  };

  const outputs = req.outputs ?? listOutputsSync(req.dir, req.generates, aborted);
  let files = 0;
  let entries = 0;
  for (const o of outputs) {
    checkAbort();
    const type = o.kind;
    const base: TarHeaderIn = {
      name: o.path,
      // As tar-stream: a zero mode becomes the default one.
      mode: o.mode || (type === 'directory' ? 0o755 : 0o644),
      uid: 0,
      gid: 0,
      size: 0,
      mtime: new Date(req.keepMtimes ? o.mtime * 1000 : 0),
      type,
      uname: '',
      gname: '',
    };
    entries++;
    if (type === 'directory') {
      header(base);
    } else if (type === 'symlink') {
      const target = readlinkSync(join(req.dir, o.path));
      if (!symlinkStaysInside(o.path, target)) {
        throw new Failure({
          kind: 'outputs',
          message: `output ${JSON.stringify(o.path)} is a symlink to ${JSON.stringify(target)}, outside the task directory; only relative symlinks inside it can be cached`,
          path: o.path,
        });
      }
      files++;
      header({ ...base, linkname: target });
    } else if (type === 'file') {
      files++;
      header({ ...base, size: o.size });
      readFileInto(o);
      pad(o.size);
    } else {
      throw new Failure({
        kind: 'outputs',
        message: `output ${JSON.stringify(o.path)} is neither a file, a directory nor a symlink (device, FIFO or socket); it cannot be cached`,
        path: o.path,
      });
    }
  }
  append(ZEROS);
  cut(true);
  return { files, entries, size: total };
}
