/**
 * Extract worker: parses the entry's tar stream (tar-stream's own header decoder, so parsing
 * matches the streaming extractor) and writes it into the staging directory with synchronous
 * file-system calls — per-file async round trips are what limits many-small-file restores.
 * Every refusal rule of internal/tar-extract.ts applies (docs/format.md "Restore safety").
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
import { createRequire } from 'node:module';
import { dirname, join, posix } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { outputMatcher } from '../internal/outputs.js';
import { safePath } from '../internal/tar-extract.js';
import { symlinkStaysInside } from '../internal/tar-pack.js';
import type { ExtractedRecord, ExtractRequest, ExtractResponse, WorkerFailure } from './protocol.js';

interface Header {
  name: string;
  mode: number | null;
  size: number;
  mtime: Date;
  type: string | null;
  linkname: string | null;
}
const headers = (() => {
  const require = createRequire(import.meta.url);
  return require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as {
    decode(buf: Uint8Array, enc: string, allowUnknown: boolean): Header | null;
    decodePax(buf: Uint8Array): Record<string, string>;
    decodeLongPath(buf: Uint8Array, enc: string): string;
  };
})();

class Failure extends Error {
  constructor(readonly failure: WorkerFailure) {
    super(failure.message);
  }
}
const refuse = (path: string, why: string) =>
  new Failure({ kind: 'refused', message: `entry path ${JSON.stringify(path)} refused: ${why}`, path });
const corrupt = (why: string) =>
  new Failure({ kind: 'corrupt', message: `entry archive is malformed: ${why}` });

type Body =
  | { kind: 'file'; fd: number; path: string; target: string; mode: number; mtime?: Date }
  | { kind: 'skip' }
  | { kind: 'meta'; type: string; buf: Buffer; fill: number };

class Extractor {
  readonly entries: ExtractedRecord[] = [];
  private readonly types = new Map<string, ExtractedRecord['type']>();
  private readonly made = new Set<string>();
  private readonly allowed: (p: string) => boolean;
  private readonly header = Buffer.alloc(512);
  private headerFill = 0;
  private body: Body | undefined;
  private bodyLeft = 0;
  private padLeft = 0;
  private pax: Record<string, string> | null = null;
  private paxGlobal: Record<string, string> | null = null;
  private longPath: string | null = null;
  private longLink: string | null = null;

  constructor(
    private readonly staging: string,
    generates: readonly string[],
    private readonly keepMtimes: boolean,
  ) {
    this.allowed = outputMatcher(generates);
  }

  write(bytes: Uint8Array): void {
    let pos = 0;
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
        this.onHeader();
      }
    }
  }

  end(): ExtractedRecord[] {
    if (this.headerFill !== 0 || this.bodyLeft > 0 || this.body !== undefined)
      throw corrupt('Unexpected end of data');
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
    if (h === null) return; // a zero block (end-of-archive padding)
    const size = h.size ?? 0;
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
      if (this.pax.size) bodySize = Number.parseInt(this.pax.size, 10);
      this.pax = null;
    }
    this.onEntry(h, bodySize);
  }

  private onEntry(h: Header, size: number): void {
    const path = safePathOf(h.name);
    if (h.type !== 'file' && h.type !== 'directory' && h.type !== 'symlink') {
      const what = h.type === 'link' ? 'hardlink' : (h.type ?? 'unknown type');
      throw refuse(path, `${what} entries are not allowed`);
    }
    const mode = h.mode ?? (h.type === 'directory' ? 0o755 : 0o644);
    if (mode & 0o6000) throw refuse(path, 'setuid/setgid bit');
    if (!this.allowed(path)) throw refuse(path, "outside the task's generates");
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
      const fd = openSync(target, 'wx', 0o600);
      record({ path, type: 'file', mode: mode & 0o777 });
      this.startBody({ kind: 'file', fd, path, target, mode: mode & 0o777, mtime }, size);
    }
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
    } else if (b?.kind === 'meta') {
      b.buf.set(bytes, b.fill);
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
    } else if (b?.kind === 'meta') {
      if (b.type === 'gnu-long-path') this.longPath = headers.decodeLongPath(b.buf, 'utf-8');
      else if (b.type === 'gnu-long-link-path') this.longLink = headers.decodeLongPath(b.buf, 'utf-8');
      else if (b.type === 'pax-global-header') this.paxGlobal = headers.decodePax(b.buf);
      else this.pax = { ...(this.paxGlobal ?? {}), ...headers.decodePax(b.buf) };
    }
  }
}

function safePathOf(name: string): string {
  try {
    return safePath(name);
  } catch (err) {
    throw new Failure({ kind: 'refused', message: (err as Error).message, path: name });
  }
}

/** As internal/tar-extract.ts: a symlink target may not pass through another symlink of the entry. */
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

function failureOf(err: unknown): WorkerFailure {
  if (err instanceof Failure) return err.failure;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.syscall === 'string')
    return { kind: 'fs', message: e.message, code: e.code, syscall: e.syscall, path: e.path };
  return { kind: 'other', message: e?.message ?? String(err) };
}

let job: { id: number; x: Extractor; failed: boolean } | undefined;
const post = (m: ExtractResponse) => parentPort?.postMessage(m);

parentPort?.on('message', (m: ExtractRequest) => {
  if (m.op === 'start') {
    job?.x.close();
    job = { id: m.id, x: new Extractor(m.staging, m.generates, m.keepMtimes), failed: false };
    return;
  }
  if (m.op === 'abort') {
    if (job?.id === m.id) {
      job.x.close();
      job = undefined;
    }
    post({ op: 'aborted', id: m.id });
    return;
  }
  if (job === undefined || job.id !== m.id) return;
  const j = job;
  if (j.failed) return;
  try {
    if (m.op === 'data') {
      j.x.write(m.bytes);
      post({ op: 'ack', id: j.id });
    } else {
      const entries = j.x.end();
      job = undefined;
      post({ op: 'done', id: j.id, entries });
    }
  } catch (err) {
    j.failed = true;
    j.x.close();
    post({ op: 'error', id: j.id, error: failureOf(err) });
  }
});
