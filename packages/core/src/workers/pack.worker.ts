/**
 * Pack worker: lists the outputs, writes the entry's normalized tar stream (byte-identical to
 * the tar-stream packer: same header encoder) straight into one reused window buffer with
 * synchronous reads, cuts it with FastCDC 2020, hashes each chunk and copies it into a free
 * shared slot for the main thread. No allocation per file or per chunk.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { chunkBuffer } from '@task-cache/chunker';
import { symlinkStaysInside } from '../internal/outputs.js';
import { Failure, failureOf } from './failure.js';
import {
  CTRL_ABORT,
  CTRL_FREE,
  CTRL_STATES,
  type PackOutput,
  type PackRequest,
  type PackResponse,
} from './protocol.js';
import { tarHeaders as headers, type TarHeaderIn } from './tar-headers.js';
import { listOutputsSync } from './walk.js';

const ZEROS = new Uint8Array(1024);

let window: Buffer | undefined;
const scratch = Buffer.allocUnsafe(1);

function run(req: PackRequest): void {
  const ctrl = new Int32Array(req.control);
  const slots = new Uint8Array(req.slots);
  const { maxSize } = req.chunking;
  const size = Math.max(4 * maxSize, 256 * 1024);
  if (window === undefined || window.byteLength !== size) window = Buffer.allocUnsafeSlow(size);
  const win = window;
  let filled = 0;
  let total = 0;
  const aborted = () => Atomics.load(ctrl, CTRL_ABORT) !== 0;
  const checkAbort = () => {
    if (aborted()) throw new Failure({ kind: 'aborted', message: 'pack aborted' });
  };

  const takeSlot = (): number => {
    for (;;) {
      checkAbort();
      const free = Atomics.load(ctrl, CTRL_FREE);
      if (free > 0) {
        if (Atomics.compareExchange(ctrl, CTRL_FREE, free, free - 1) !== free) continue;
        for (let i = 0; i < req.slotCount; i++) {
          if (Atomics.compareExchange(ctrl, CTRL_STATES + i, 0, 1) === 0) return i;
        }
        // The count and the states disagree only transiently; give the count back and retry.
        Atomics.add(ctrl, CTRL_FREE, 1);
      }
      Atomics.wait(ctrl, CTRL_FREE, 0, 100);
    }
  };

  const emit = (data: Uint8Array) => {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const slot = takeSlot();
    slots.set(data, slot * req.slotSize);
    total += data.byteLength;
    const msg: PackResponse = { op: 'chunk', id: req.id, slot, length: data.byteLength, digest };
    parentPort?.postMessage(msg);
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
      emit(view.subarray(c.offset, c.offset + c.length));
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

  const outputs = listOutputsSync(req.dir, req.generates, aborted);
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
  const done: PackResponse = { op: 'done', id: req.id, files, entries, size: total };
  parentPort?.postMessage(done);
}

parentPort?.on('message', (req: PackRequest) => {
  try {
    run(req);
  } catch (err) {
    let error = failureOf(err);
    if (error.kind === 'other' && Atomics.load(new Int32Array(req.control), CTRL_ABORT) !== 0)
      error = { kind: 'aborted', message: 'pack aborted' };
    const msg: PackResponse = { op: 'error', id: req.id, error };
    parentPort?.postMessage(msg);
  }
});
