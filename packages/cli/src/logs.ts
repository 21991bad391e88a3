/**
 * The command's output log, stored with the entry as one of its outputs (see docs/format.md, "The
 * CLI's output log"): `.task-cache/logs/<urlsafe(task)>.log` under the task directory.
 *
 * Format: the magic line `task-cache-log 1\n`, then records `[stream: u8][length: u32 BE][bytes]`
 * in the order the bytes arrived (stream 1 = stdout, 2 = stderr), so a replay keeps the
 * interleaving. At most `limit` bytes of output are recorded; after that one stderr record says the
 * log was truncated, and the rest of the output is shown live but not stored.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Directory of the logs, relative to the task directory. */
export const LOG_DIR = '.task-cache/logs';
/** First bytes of a log file. */
export const LOG_MAGIC = 'task-cache-log 1\n';
/** Output bytes recorded per run, at most. @default 8 MiB */
export const LOG_LIMIT = 8 * 1024 * 1024;

/** Where the log of `task` lives, relative to the task directory (`urlsafeTask` = core's `urlsafe(task)`). */
export const logPath = (urlsafeTask: string): string => `${LOG_DIR}/${urlsafeTask}.log`;

/** 1 = stdout, 2 = stderr. */
export type StreamId = 1 | 2;

/** Writes a log while the command runs; `commit()` moves it into place, `discard()` removes it. */
export interface LogRecorder {
  write(stream: StreamId, bytes: Buffer): void;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

function header(stream: StreamId, length: number): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt8(stream, 0);
  h.writeUInt32BE(length, 1);
  return h;
}

/** Starts the log of `file` (absolute); the bytes go to `file.partial-<pid>` until `commit()`. */
export async function recordLog(file: string, limit = LOG_LIMIT): Promise<LogRecorder> {
  await mkdir(dirname(file), { recursive: true });
  // NOTE: the directory holds only logs; a .gitignore keeps them out of the user's commits.
  await writeFile(join(dirname(file), '..', '.gitignore'), '*\n').catch(() => {});
  const partial = `${file}.partial-${process.pid}`;
  const out: WriteStream = createWriteStream(partial);
  out.on('error', () => {}); // surfaced by commit()
  out.write(LOG_MAGIC);
  let recorded = 0;
  let truncated = false;
  const closed = () =>
    new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      out.end(resolve);
    });
  return {
    write(stream, bytes) {
      if (truncated || bytes.length === 0) return;
      const room = limit - recorded;
      const take = bytes.length <= room ? bytes : bytes.subarray(0, room);
      if (take.length > 0) {
        out.write(header(stream, take.length));
        out.write(take);
        recorded += take.length;
      }
      if (take.length < bytes.length) {
        truncated = true;
        const note = Buffer.from(`\n[task-cache: output log truncated at ${limit} bytes]\n`);
        out.write(header(2, note.length));
        out.write(note);
      }
    },
    async commit() {
      await closed();
      await rename(partial, file);
    },
    async discard() {
      await closed().catch(() => {});
      await rm(partial, { force: true });
    },
  };
}

/** Writes `bytes` to `stream`, waiting when it is full. */
function writeOut(stream: NodeJS.WritableStream, bytes: Buffer): Promise<void> | undefined {
  if (stream.write(bytes)) return undefined;
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

/**
 * Replays the log `file` to `stdout` and `stderr`, record by record, reading it in blocks (never the
 * whole file at once). Returns `false` when the file is missing or not a log.
 */
export async function replayLog(
  file: string,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): Promise<boolean> {
  let pending: Buffer = Buffer.alloc(0);
  let magicSeen = false;
  try {
    for await (const block of createReadStream(file, { highWaterMark: 64 * 1024 })) {
      pending = pending.length === 0 ? (block as Buffer) : Buffer.concat([pending, block as Buffer]);
      if (!magicSeen) {
        if (pending.length < LOG_MAGIC.length) continue;
        if (pending.subarray(0, LOG_MAGIC.length).toString('latin1') !== LOG_MAGIC) return false;
        pending = pending.subarray(LOG_MAGIC.length);
        magicSeen = true;
      }
      while (pending.length >= 5) {
        const length = pending.readUInt32BE(1);
        if (pending.length < 5 + length) break;
        const target = pending.readUInt8(0) === 1 ? stdout : stderr;
        const wait = writeOut(target, pending.subarray(5, 5 + length));
        if (wait) await wait;
        pending = pending.subarray(5 + length);
      }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  return magicSeen;
}
