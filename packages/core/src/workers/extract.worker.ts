/**
 * Extract worker: parses the entry's tar stream (tar-stream's own header decoder, so parsing
 * matches the streaming extractor) and writes it into the staging directory with synchronous
 * file-system calls — per-file async round trips are what limits many-small-file restores.
 * Every refusal rule of internal/tar-extract.ts applies (docs/format.md "Restore safety").
 *
 * Creating a file costs far more (kernel) CPU than parsing it, so small regular files whose
 * bytes are all in the current piece are copied out and handed, in batches, to one write worker
 * (write.worker.ts) that creates them in parallel with this thread. All checks run here first,
 * and the parent directory is created here, before a file is handed over. The two threads work
 * in different directories: creating a file locks its directory, and two threads creating files
 * in one directory mostly wait for each other (measured: the time in `open` doubled). A
 * directory goes to the writer when the writer is nearly out of work as this thread reaches it,
 * else this thread keeps it. When the writer has more than a bound queued (QUEUE_FILES, or
 * RING_BYTES of shared memory), this thread creates the file itself: it never waits for the
 * writer, and the hand-over uses RING_BYTES of memory. `done` is sent only once the writer
 * confirmed every file it was given. The writer thread (~15-20 MB) is started only once an entry
 * has more than SPAWN_AFTER small files, and kept, idle and unref'd, for the next entries.
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
import { parentPort, type Worker } from 'node:worker_threads';
import { outputMatcher } from '../internal/outputs.js';
import { safePath } from '../internal/tar-extract.js';
import { symlinkStaysInside } from '../internal/tar-pack.js';
import type { ExtractedRecord, ExtractRequest, ExtractResponse, WorkerFailure } from './protocol.js';
import { spawnWorker } from './spawn.js';
import {
  type SmallFile,
  WCTRL_FILES,
  WCTRL_FREED,
  WCTRL_LENGTH,
  WCTRL_STOP,
  type WriteRequest,
  type WriteResponse,
} from './write-protocol.js';

/** Regular files up to this size (and wholly in the current piece) may go to the writer. */
const SMALL_FILE = 256 * 1024;
/** The writer is started (or reused) only after this many small files in an entry. */
const SPAWN_AFTER = 64;
/** A batch is sent at this many files or bytes (or sooner, see LOW_WATER and `flush`). */
const BATCH_FILES = 64;
const BATCH_BYTES = 1024 * 1024;
/**
 * Shared memory holding the bytes of the files handed over and not yet written: all the memory
 * the hand-over uses. When it is full, this thread writes files itself.
 */
const RING_BYTES = 4 * 1024 * 1024;
/** Above this many files handed over and not yet written, this thread writes itself. */
const QUEUE_FILES = 512;
/** A directory reached while the writer has fewer files than this to write goes to the writer. */
const HAND_OVER_BELOW = 64;
/** A partial batch is sent at once when the writer has fewer files than this left to write. */
const LOW_WATER = 16;

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
  | { kind: 'small'; into: Uint8Array; fill: number; file: SmallFile }
  | { kind: 'skip' }
  | { kind: 'meta'; type: string; buf: Buffer; fill: number };

/**
 * The small files of one job on their way to the write worker: their bytes, copied into a ring
 * of shared memory (the writer frees each batch's span after writing it, in order), the batch
 * being filled, and the state shared with the writer (files it has not written yet, bytes freed,
 * the stop flag).
 */
class Handoff {
  readonly control = new Int32Array(new SharedArrayBuffer(WCTRL_LENGTH * 4));
  /** Batches sent and not yet confirmed. */
  pending = 0;
  /** RING_BYTES (its pages are touched only as files fill them). */
  private readonly ring = new SharedArrayBuffer(RING_BYTES);
  /** Where the next file's bytes go. */
  private head = 0;
  /** Bytes reserved so far, wrapping like the writer's Int32 WCTRL_FREED. */
  private reserved = 0;
  private files: SmallFile[] = [];
  /** Bytes of the ring the current batch holds (its files and any gap skipped at the end). */
  private span = 0;
  /** Directories (of the archive) whose small files go to the writer (true) or stay here. */
  private readonly owners = new Map<string, boolean>();

  constructor(
    private readonly id: number,
    readonly writer: Worker,
  ) {
    this.send({ op: 'start', id, control: this.control.buffer as SharedArrayBuffer, ring: this.ring });
  }

  /**
   * Reserves ring space for a file of `size` bytes in directory `dir`; `undefined` when the
   * file stays with this thread: `dir` is not the writer's, or the writer already has enough
   * queued (then the rest of `dir` stays here too).
   */
  take(dir: string, size: number): { into: Uint8Array; offset: number } | undefined {
    if (Atomics.load(this.control, WCTRL_STOP) !== 0) return undefined;
    const queued = Atomics.load(this.control, WCTRL_FILES) + this.files.length;
    let writers = this.owners.get(dir);
    if (writers === undefined) {
      writers = queued < HAND_OVER_BELOW;
      this.owners.set(dir, writers);
    }
    if (!writers) return undefined;
    const gap = this.head + size > RING_BYTES ? RING_BYTES - this.head : 0;
    const inFlight = (this.reserved - Atomics.load(this.control, WCTRL_FREED)) | 0;
    if (queued >= QUEUE_FILES || inFlight + gap + size > RING_BYTES) {
      this.owners.set(dir, false);
      return undefined;
    }
    if (gap > 0 || this.head + size > RING_BYTES) this.head = 0;
    const offset = this.head;
    this.head += size;
    this.reserved = (this.reserved + gap + size) | 0;
    this.span += gap + size;
    return { into: new Uint8Array(this.ring, offset, size), offset };
  }

  /** Adds the file whose bytes were copied into the room `take` gave. */
  add(file: SmallFile): void {
    this.files.push(file);
    if (this.files.length >= BATCH_FILES || this.span >= BATCH_BYTES) this.flush();
  }

  /** Sends the batch now if the writer is about to run out of work. */
  feed(): void {
    if (this.files.length > 0 && Atomics.load(this.control, WCTRL_FILES) < LOW_WATER) this.flush();
  }

  flush(): void {
    if (this.files.length === 0) return;
    Atomics.add(this.control, WCTRL_FILES, this.files.length);
    this.pending++;
    this.send({ op: 'batch', id: this.id, files: this.files, span: this.span });
    this.files = [];
    this.span = 0;
  }

  /** The writer created every file of one batch. */
  written(): void {
    this.pending--;
  }

  /** Makes the writer skip whatever it has not written yet; the unsent batch is dropped. */
  stop(): void {
    Atomics.store(this.control, WCTRL_STOP, 1);
    this.files = [];
    this.span = 0;
  }

  private send(m: WriteRequest): void {
    this.writer.postMessage(m);
  }
}

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
  /** Bytes of the current piece after the header being decoded. */
  private avail = 0;
  /** Small files seen; the writer is used from the SPAWN_AFTER + 1st on. */
  private candidates = 0;
  /** Where small files go, once there were enough of them (undefined: no writer, or not yet). */
  handoff: Handoff | undefined;
  private noWriter = false;

  constructor(
    private readonly id: number,
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
        this.avail = bytes.byteLength - pos;
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
    const w = startWriter();
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

interface Job {
  id: number;
  x: Extractor;
  failed: boolean;
  /** The entries, once the archive ended; sent when the writer confirmed everything. */
  ending?: ExtractedRecord[];
}
let job: Job | undefined;
/** The write worker, started when a job first needs it and kept (unref'd) for the next ones. */
let writer: Worker | undefined;
/** An abort waiting for the writer to confirm it stopped. */
let stopping: number | undefined;
const post = (m: ExtractResponse) => parentPort?.postMessage(m);

function startWriter(): Worker | undefined {
  if (writer !== undefined) return writer;
  let w: Worker;
  try {
    w = spawnWorker('write');
  } catch {
    return undefined; // this thread writes everything itself
  }
  w.on('message', (m: WriteResponse) => onWriterMessage(m));
  const gone = (err: unknown) => onWriterGone(w, err);
  w.on('error', gone);
  w.on('exit', (code) => gone(new Error(`write worker exited with code ${code}`)));
  // NOTE: after adding the listeners (which ref the port): an idle writer keeps nothing alive.
  w.unref();
  writer = w;
  return w;
}

function onWriterMessage(m: WriteResponse): void {
  if (m.op === 'stopped') {
    if (stopping === m.id) {
      stopping = undefined;
      post({ op: 'aborted', id: m.id });
    }
    return;
  }
  const j = job;
  if (j === undefined || j.id !== m.id || j.failed) return;
  if (m.op === 'error') fail(j, m.error);
  else {
    j.x.handoff?.written();
    finish(j);
  }
}

function onWriterGone(w: Worker, err: unknown): void {
  if (writer !== w) return;
  writer = undefined;
  if (stopping !== undefined) {
    // Nothing more will be written: the thread is gone.
    post({ op: 'aborted', id: stopping });
    stopping = undefined;
  }
  const j = job;
  if (j?.x.handoff?.writer === w && !j.failed)
    fail(j, { kind: 'other', message: `write worker failed: ${(err as Error)?.message ?? String(err)}` });
}

function fail(j: Job, failure: WorkerFailure): void {
  if (j.failed) return;
  j.failed = true;
  j.x.handoff?.stop();
  j.x.close();
  post({ op: 'error', id: j.id, error: failure });
}

/** Reports `done` once the archive ended and the writer confirmed every file. */
function finish(j: Job): void {
  if (j.ending === undefined || j.failed || (j.x.handoff?.pending ?? 0) > 0) return;
  job = undefined;
  post({ op: 'done', id: j.id, entries: j.ending });
}

parentPort?.on('message', (m: ExtractRequest) => {
  if (m.op === 'start') {
    if (job !== undefined) {
      job.x.handoff?.stop();
      job.x.close();
    }
    job = { id: m.id, x: new Extractor(m.id, m.staging, m.generates, m.keepMtimes), failed: false };
    return;
  }
  if (m.op === 'abort') {
    const j = job;
    if (j?.id === m.id) {
      job = undefined;
      j.x.handoff?.stop();
      j.x.close();
      if (j.x.handoff !== undefined && j.x.handoff.writer === writer) {
        // `aborted` only once the writer stopped: nothing may be written into staging after it.
        stopping = m.id;
        j.x.handoff.writer.postMessage({ op: 'stop', id: m.id } satisfies WriteRequest);
        return;
      }
    }
    post({ op: 'aborted', id: m.id });
    return;
  }
  const j = job;
  if (j === undefined || j.id !== m.id || j.failed || j.ending !== undefined) return;
  try {
    if (m.op === 'data') {
      j.x.write(m.bytes);
      j.x.handoff?.flush();
      post({ op: 'ack', id: j.id });
    } else {
      j.ending = j.x.end();
      j.x.handoff?.flush();
      finish(j);
    }
  } catch (err) {
    fail(j, failureOf(err));
  }
});
