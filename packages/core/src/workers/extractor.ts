/**
 * The extraction of one entry's tar stream inside the extract worker: header parsing with
 * tar-stream's own decoder, every refusal rule of docs/format.md "Restore safety" (paths via
 * `safePath` of internal/tar-extract.ts, types, modes, generates, duplicates, symlinks), and
 * synchronous writes into the staging directory — small files handed to the write worker once
 * an entry has enough of them (extract-handoff.ts).
 */
import {
  chmodSync,
  closeSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { outputMatcher, protectedMatcher, symlinkStaysInside } from '../internal/outputs.js';
import { safePath } from '../internal/tar-extract.js';
import { Handoff } from './extract-handoff.js';
import { Failure } from './failure.js';
import type { ExtractedRecord } from './protocol.js';
import { type TarHeaderOut as Header, tarHeaders as headers } from './tar-headers.js';
import type { SmallFile } from './write-protocol.js';

/** Regular files up to this size (and wholly in the current piece) may go to the writer. */
const SMALL_FILE = 256 * 1024;
/** The writer is started (or reused) only after this many small files in an entry. */
const SPAWN_AFTER = 64;

const refuse = (path: string, why: string) =>
  new Failure({ kind: 'refused', message: `entry path ${JSON.stringify(path)} refused: ${why}`, path });
const corrupt = (why: string) =>
  new Failure({ kind: 'corrupt', message: `entry archive is malformed: ${why}` });

type Body =
  | { kind: 'file'; fd: number; path: string; target: string; mode: number; mtime?: Date }
  | { kind: 'small'; into: Uint8Array; fill: number; file: SmallFile }
  | { kind: 'skip' }
  | { kind: 'meta'; type: string; buf: Buffer; fill: number };

export class Extractor {
  readonly entries: ExtractedRecord[] = [];
  private readonly types = new Map<string, ExtractedRecord['type']>();
  private readonly made = new Set<string>();
  private readonly allowed: (p: string) => boolean;
  private readonly isProtected: (p: string) => boolean;
  private readonly header = Buffer.alloc(512);
  private headerFill = 0;
  private body: Body | undefined;
  private bodyLeft = 0;
  private padLeft = 0;
  private pax: Record<string, string> | null = null;
  private paxGlobal: Record<string, string> | null = null;
  private longPath: string | null = null;
  private longLink: string | null = null;
  /** The end-of-archive marker was read. */
  private ended = false;
  /** The path of the entry being written (for errors). */
  private current = '';
  /** Bytes of the current piece after the header being decoded. */
  private avail = 0;
  /** Small files seen; the writer is used from the SPAWN_AFTER + 1st on. */
  private candidates = 0;
  /** Where small files go, once there were enough of them (undefined: no writer, or not yet). */
  handoff: Handoff | undefined;
  private noWriter = false;

  /**
   * @param startWriter the worker's shared write worker (started on first use), `undefined`
   * when none can be started (this thread then writes everything itself).
   */
  constructor(
    private readonly id: number,
    private readonly staging: string,
    generates: readonly string[],
    private readonly keepMtimes: boolean,
    private readonly startWriter: () => Worker | undefined,
  ) {
    this.allowed = outputMatcher(generates);
    this.isProtected = protectedMatcher(generates);
  }

  write(bytes: Uint8Array): void {
    try {
      this.writeBytes(bytes);
    } catch (err) {
      throw typedFsFailure(err, this.current);
    }
  }

  private writeBytes(bytes: Uint8Array): void {
    let pos = 0;
    if (this.ended) {
      // NOTE: after the end-of-archive marker only zero padding may follow (issue 16: trailing
      // data was extracted instead of refused).
      if (bytes.some((b) => b !== 0)) throw corrupt('data after the end-of-archive marker');
      return;
    }
    while (pos < bytes.byteLength) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, bytes.byteLength - pos);
        this.bodyBytes(bytes.subarray(pos, pos + n));
        pos += n;
        this.bodyLeft -= n;
        if (this.bodyLeft === 0) this.endBody();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, bytes.byteLength - pos);
        pos += n;
        this.padLeft -= n;
        continue;
      }
      const n = Math.min(512 - this.headerFill, bytes.byteLength - pos);
      this.header.set(bytes.subarray(pos, pos + n), this.headerFill);
      this.headerFill += n;
      pos += n;
      if (this.headerFill === 512) {
        this.headerFill = 0;
        this.avail = bytes.byteLength - pos;
        this.onHeader();
        if (this.ended) {
          if (bytes.subarray(pos).some((b) => b !== 0)) throw corrupt('data after the end-of-archive marker');
          return;
        }
      }
    }
  }

  end(): ExtractedRecord[] {
    if (this.headerFill !== 0 || this.bodyLeft > 0 || this.body !== undefined)
      throw corrupt('Unexpected end of data');
    if (this.longPath !== null || this.longLink !== null || this.pax !== null)
      throw corrupt('an extended header without its entry at the end of the archive');
    checkSymlinkChains(this.entries, this.types);
    return this.entries;
  }

  /** Closes an open file (after a failure). */
  close(): void {
    if (this.body?.kind === 'file') {
      try {
        closeSync(this.body.fd);
      } catch {
        // already closed
      }
    }
    this.body = undefined;
  }

  private mkdirp(dir: string): void {
    if (this.made.has(dir)) return;
    mkdirSync(dir, { recursive: true });
    this.made.add(dir);
  }

  private onHeader(): void {
    let h: Header | null;
    try {
      h = headers.decode(this.header, 'utf-8', false);
    } catch (err) {
      throw corrupt((err as Error).message);
    }
    if (h === null) {
      // A zero block: the end-of-archive marker. Nothing but zeros may follow.
      if (this.longPath !== null || this.longLink !== null || this.pax !== null)
        throw corrupt('an extended header without its entry before the end of the archive');
      this.ended = true;
      return;
    }
    const size = h.size ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) throw corrupt(`header size ${String(size)} is invalid`);
    if (h.type === 'pax-global-header')
      throw corrupt('pax global headers are not allowed (task-cache never writes them)');
    if (
      h.type === 'pax-header' ||
      h.type === 'pax-global-header' ||
      h.type === 'gnu-long-path' ||
      h.type === 'gnu-long-link-path'
    ) {
      if (size > 1024 * 1024) throw corrupt(`${h.type} of ${size} bytes`);
      this.startBody({ kind: 'meta', type: h.type, buf: Buffer.alloc(size), fill: 0 }, size);
      return;
    }
    if (this.longPath !== null) h.name = this.longPath;
    if (this.longLink !== null) h.linkname = this.longLink;
    this.longPath = null;
    this.longLink = null;
    let bodySize = size;
    if (this.pax) {
      if (this.pax.path) h.name = this.pax.path;
      if (this.pax.linkpath) h.linkname = this.pax.linkpath;
      if (this.pax.size !== undefined) {
        if (!/^[0-9]{1,15}$/.test(this.pax.size))
          throw corrupt(`pax size ${JSON.stringify(this.pax.size.slice(0, 40))} is invalid`);
        bodySize = Number.parseInt(this.pax.size, 10);
      }
      this.pax = null;
    }
    this.onEntry(h, bodySize);
  }

  private onEntry(h: Header, size: number): void {
    this.current = h.name;
    const path = safePathOf(h.name);
    this.current = path;
    if (h.type !== 'file' && h.type !== 'directory' && h.type !== 'symlink') {
      const what = h.type === 'link' ? 'hardlink' : (h.type ?? 'unknown type');
      throw refuse(path, `${what} entries are not allowed`);
    }
    const mode = h.mode ?? (h.type === 'directory' ? 0o755 : 0o644);
    if (mode & 0o6000) throw refuse(path, 'setuid/setgid bit');
    if (!this.allowed(path)) {
      if (this.isProtected(path))
        throw refuse(path, 'a source of the task (or under .git): a restore never writes or replaces it');
      throw refuse(path, "outside the task's generates");
    }
    if (this.types.has(path)) throw refuse(path, 'duplicate entry');
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const parent = segs.slice(0, i).join('/');
      const t = this.types.get(parent);
      if (t === 'symlink')
        throw refuse(path, `would be written through the symlink ${JSON.stringify(parent)}`);
      if (t === 'file') throw refuse(path, `parent ${JSON.stringify(parent)} is a file`);
    }
    const target = join(this.staging, path);
    const mtime = this.keepMtimes && h.mtime ? h.mtime : undefined;
    // NOTE: utimes takes seconds as a double; beyond ±2^53 ms (and for NaN) it fails with EINVAL.
    if (mtime !== undefined && !(Math.abs(mtime.getTime()) <= MAX_MTIME_MS))
      throw refuse(path, `mtime ${String(h.mtime?.getTime())} ms is out of range`);
    const record = (r: ExtractedRecord) => {
      if (mtime) r.mtimeMs = mtime.getTime();
      this.entries.push(r);
      this.types.set(path, r.type);
    };
    if (h.type === 'directory') {
      this.mkdirp(target);
      record({ path, type: 'directory', mode: mode & 0o777 });
      this.startBody({ kind: 'skip' }, size);
    } else if (h.type === 'symlink') {
      const linkname = h.linkname ?? '';
      if (!symlinkStaysInside(path, linkname))
        throw refuse(path, `symlink to ${JSON.stringify(linkname)} leaves the task directory`);
      this.mkdirp(posix.dirname(target));
      symlinkSync(linkname, target);
      if (mtime) {
        try {
          lutimesSync(target, mtime, mtime);
        } catch {
          // not supported everywhere
        }
      }
      record({ path, type: 'symlink', mode: mode & 0o777, linkname });
      this.startBody({ kind: 'skip' }, size);
    } else {
      this.mkdirp(posix.dirname(target));
      this.handoff?.feed();
      // NOTE: only a body wholly in this piece is handed over, so a batch never holds half a
      // file and can be sent at the end of every piece.
      const room =
        size <= SMALL_FILE && size <= this.avail
          ? this.smallFiles()?.take(posix.dirname(path), size)
          : undefined;
      if (room !== undefined) {
        record({ path, type: 'file', mode: mode & 0o777 });
        const file: SmallFile = { target, offset: room.offset, size, mode: mode & 0o777 };
        if (mtime) file.mtimeMs = mtime.getTime();
        this.startBody({ kind: 'small', into: room.into, fill: 0, file }, size);
        return;
      }
      const fd = openSync(target, 'wx', 0o600);
      record({ path, type: 'file', mode: mode & 0o777 });
      this.startBody({ kind: 'file', fd, path, target, mode: mode & 0o777, mtime }, size);
    }
  }

  /**
   * The hand-over, set up at the SPAWN_AFTER + 1st small file: an entry with few small files
   * costs no thread (its memory, its start-up).
   */
  private smallFiles(): Handoff | undefined {
    if (this.handoff !== undefined || this.noWriter) return this.handoff;
    if (++this.candidates <= SPAWN_AFTER) return undefined;
    const w = this.startWriter();
    if (w === undefined) this.noWriter = true;
    else this.handoff = new Handoff(this.id, w);
    return this.handoff;
  }

  private startBody(body: Body, size: number): void {
    this.body = body;
    this.bodyLeft = size;
    this.padLeft = (512 - (size % 512)) % 512;
    if (size === 0) this.endBody();
  }

  private bodyBytes(bytes: Uint8Array): void {
    const b = this.body;
    if (b?.kind === 'file') {
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(b.fd, bytes, off, bytes.byteLength - off);
    } else if (b?.kind === 'small' || b?.kind === 'meta') {
      (b.kind === 'small' ? b.into : b.buf).set(bytes, b.fill);
      b.fill += bytes.byteLength;
    }
  }

  private endBody(): void {
    const b = this.body;
    this.body = undefined;
    if (b?.kind === 'file') {
      closeSync(b.fd);
      chmodSync(b.target, b.mode);
      if (b.mtime) utimesSync(b.target, b.mtime, b.mtime);
    } else if (b?.kind === 'small') {
      this.handoff?.add(b.file);
    } else if (b?.kind === 'meta') {
      if (b.type === 'gnu-long-path') this.longPath = headers.decodeLongPath(b.buf, 'utf-8');
      else if (b.type === 'gnu-long-link-path') this.longLink = headers.decodeLongPath(b.buf, 'utf-8');
      else if (b.type === 'pax-global-header') this.paxGlobal = headers.decodePax(b.buf);
      else this.pax = { ...(this.paxGlobal ?? {}), ...headers.decodePax(b.buf) };
    }
  }
}

/** Latest mtime kept: year 275 760 (the range of a JavaScript `Date`, and far within utimes'). */
const MAX_MTIME_MS = 8.64e15;

/** What a file-system error caused by an entry's content means, by code. */
const FS_REFUSALS: Record<string, string> = {
  ENAMETOOLONG: 'its name is too long for this file system',
  EINVAL: 'the file system refused a value of it (name or mtime)',
  EEXIST: 'it collides with a path the entry already created',
  ENOTDIR: 'a parent of it is not a directory',
  EISDIR: 'it collides with a directory the entry already created',
  ELOOP: 'it goes through a symlink',
  EILSEQ: 'its name is not valid on this file system',
};

/**
 * A file-system error while writing `path` becomes the typed refusal of that entry path when
 * the entry's content caused it (issue 16: raw ENAMETOOLONG, EINVAL, EEXIST escaped); other
 * failures (ENOSPC, EACCES, …) stay file-system failures with their code.
 */
function typedFsFailure(err: unknown, path: string): unknown {
  if (err instanceof Failure) return err;
  const e = err as NodeJS.ErrnoException | null;
  const code = e?.code;
  const why = typeof code === 'string' ? FS_REFUSALS[code] : undefined;
  if (why === undefined) {
    // A `write` error names no path: the entry path being written is the one at fault.
    if (typeof e?.syscall === 'string' && e.path === undefined) e.path = path;
    return err;
  }
  return new Failure({
    kind: 'refused',
    message: `entry path ${JSON.stringify(path.slice(0, 200))} refused: ${why} [${code}]`,
    path,
  });
}

function safePathOf(name: string): string {
  try {
    return safePath(name);
  } catch (err) {
    throw new Failure({ kind: 'refused', message: (err as Error).message, path: name });
  }
}

/** A symlink target may not pass through another symlink of the entry (docs/format.md "Restore safety"). */
function checkSymlinkChains(
  entries: readonly ExtractedRecord[],
  types: Map<string, ExtractedRecord['type']>,
): void {
  for (const e of entries) {
    if (e.type !== 'symlink' || e.linkname === undefined) continue;
    const stack = posix.dirname(e.path) === '.' ? [] : posix.dirname(e.path).split('/');
    const segs = e.linkname.split('/').filter((s) => s !== '' && s !== '.');
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i] as string;
      if (s === '..') {
        if (stack.length === 0) throw refuse(e.path, 'symlink leaves the task directory');
        stack.pop();
        continue;
      }
      stack.push(s);
      if (i < segs.length - 1 && types.get(stack.join('/')) === 'symlink') {
        throw refuse(e.path, `symlink target goes through the symlink ${JSON.stringify(stack.join('/'))}`);
      }
    }
  }
}
