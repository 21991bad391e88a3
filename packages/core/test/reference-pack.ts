/**
 * Reference implementations the tests compare core's worker pipeline with (test code only: not in
 * `src/`, not published): the streaming tar-stream packer of an entry's normalized pax tar
 * (docs/format.md: entries in path order, uid/gid 0, no user/group names, mtimes 0 unless kept,
 * permission bits kept, setuid/setgid/sticky dropped, directories and relative symlinks kept) and
 * the streaming chunker over it. `workers/pack.worker.ts` must produce byte-identical chunks.
 */
import { createReadStream } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkStream } from '@task-cache/chunker';
import * as tar from 'tar-stream';
import { EntryOutputsError } from '../src/errors.js';
import type { ChunkParams } from '../src/internal/chunk.js';
import { type OutputPath, symlinkStaysInside } from '../src/internal/outputs.js';

/** Options of {@link packOutputs}. */
export interface PackOptions {
  keepMtimes: boolean;
  signal?: AbortSignal;
}

// Files up to this size are read whole (one fs round trip); larger ones are streamed.
const SMALL_FILE = 1024 * 1024;

function waitDrain(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/**
 * Streams the tar of `outputs` (already sorted). Counts are filled in as it goes.
 * @throws {EntryOutputsError} for an output that an entry cannot hold.
 */
export function packOutputs(
  dir: string,
  outputs: readonly OutputPath[],
  options: PackOptions,
): { stream: AsyncIterable<Uint8Array>; stats: { files: number; entries: number } } {
  const pack = tar.pack();
  const stats = { files: 0, entries: 0 };
  const mtime = (o: OutputPath) =>
    options.keepMtimes ? new Date(Math.floor(o.stats.mtimeMs / 1000) * 1000) : new Date(0);

  const produce = async () => {
    for (const o of outputs) {
      options.signal?.throwIfAborted();
      if (pack.destroyed) return;
      const base = {
        name: o.path,
        mode: o.stats.mode & 0o777,
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
        mtime: mtime(o),
      };
      stats.entries++;
      if (o.kind === 'directory') {
        await entry(pack, { ...base, type: 'directory', size: 0 });
      } else if (o.kind === 'symlink') {
        const target = await readlink(join(dir, o.path));
        if (!symlinkStaysInside(o.path, target)) {
          throw new EntryOutputsError(
            `output ${JSON.stringify(o.path)} is a symlink to ${JSON.stringify(target)}, outside the task directory; only relative symlinks inside it can be cached`,
            { path: o.path },
          );
        }
        stats.files++;
        await entry(pack, { ...base, type: 'symlink', size: 0, linkname: target });
      } else if (o.kind === 'file') {
        stats.files++;
        const size = o.stats.size;
        if (size <= SMALL_FILE) {
          const data = await readFile(join(dir, o.path));
          if (data.byteLength !== size) throw changed(o.path);
          await entry(pack, { ...base, type: 'file', size }, data);
        } else {
          await new Promise<void>((resolve, reject) => {
            const sink = pack.entry({ ...base, type: 'file', size }, (err) =>
              err ? reject(err) : resolve(),
            );
            (async () => {
              let seen = 0;
              for await (const piece of createReadStream(join(dir, o.path), { highWaterMark: 256 * 1024 })) {
                options.signal?.throwIfAborted();
                seen += (piece as Buffer).byteLength;
                if (seen > size) throw changed(o.path);
                if (!sink.write(piece)) await waitDrain(sink);
                if (pack.destroyed) throw new Error('archive stream closed');
              }
              if (seen !== size) throw changed(o.path);
              (sink as unknown as { end(): void }).end();
            })().catch((err) => {
              sink.destroy(err);
              reject(err);
            });
          });
        }
      } else {
        throw new EntryOutputsError(
          `output ${JSON.stringify(o.path)} is neither a file, a directory nor a symlink (device, FIFO or socket); it cannot be cached`,
          { path: o.path },
        );
      }
    }
    pack.finalize();
  };
  produce().catch((err) => pack.destroy(err));

  return { stream: pack as unknown as AsyncIterable<Uint8Array>, stats };
}

function changed(path: string): EntryOutputsError {
  return new EntryOutputsError(`output ${JSON.stringify(path)} changed size while it was being saved`, {
    path,
  });
}

function entry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    if (data === undefined) pack.entry(header, cb);
    else pack.entry(header, data, cb);
  });
}

/** One chunk of the stream, with its bytes. */
export interface Chunk {
  offset: number;
  length: number;
  data: Uint8Array;
}

/**
 * Cuts `source` into content-defined chunks, in order. An empty source gives one empty chunk, so
 * every entry has at least one layer.
 */
export async function* chunk(
  source: AsyncIterable<Uint8Array>,
  params: ChunkParams,
  signal?: AbortSignal,
): AsyncGenerator<Chunk> {
  let any = false;
  // NOTE: the tar stream hands out fresh buffers (it never reuses them), so the chunker's views
  // stay valid while later chunks are cut; no copy needed.
  for await (const c of chunkStream(source, { ...params, signal })) {
    any = true;
    yield { offset: c.offset, length: c.length, data: c.data ?? new Uint8Array(0) };
  }
  if (!any) yield { offset: 0, length: 0, data: new Uint8Array(0) };
}
