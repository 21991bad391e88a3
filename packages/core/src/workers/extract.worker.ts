/**
 * Extract worker: parses the entry's tar stream (tar-stream's own header decoder, so parsing
 * matches the streaming extractor) and writes it into the staging directory with synchronous
 * file-system calls — per-file async round trips are what limits many-small-file restores.
 * Every refusal rule of docs/format.md "Restore safety" applies. This file holds the job and the
 * write worker's life cycle; the parsing, checks and writes are extractor.ts, the hand-over of
 * small files is extract-handoff.ts.
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
import { parentPort, type Worker } from 'node:worker_threads';
import { Extractor } from './extractor.js';
import { failureOf } from './failure.js';
import type { ExtractedRecord, ExtractRequest, ExtractResponse, WorkerFailure } from './protocol.js';
import { spawnWorker } from './spawn.js';
import type { WriteRequest, WriteResponse } from './write-protocol.js';

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
    job = {
      id: m.id,
      x: new Extractor(m.id, m.staging, m.generates, m.keepMtimes, startWriter),
      failed: false,
    };
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
