/**
 * Pack worker: runs the pack (pack-core.ts) and copies each chunk into a free shared slot for
 * the main thread, waiting for one when all are taken. No allocation per file or per chunk.
 */
import { parentPort } from 'node:worker_threads';
import { Failure, failureOf } from './failure.js';
import { packSync, windowSize } from './pack-core.js';
import { CTRL_ABORT, CTRL_FREE, CTRL_STATES, type PackRequest, type PackResponse } from './protocol.js';

let window: Buffer | undefined;

function run(req: PackRequest): void {
  const ctrl = new Int32Array(req.control);
  const slots = new Uint8Array(req.slots);
  const size = windowSize(req.chunking);
  if (window === undefined || window.byteLength !== size) window = Buffer.allocUnsafeSlow(size);
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

  const emit = (data: Uint8Array, digest: string) => {
    const slot = takeSlot();
    slots.set(data, slot * req.slotSize);
    const msg: PackResponse = { op: 'chunk', id: req.id, slot, length: data.byteLength, digest };
    parentPort?.postMessage(msg);
  };

  const {
    files,
    entries,
    size: total,
  } = packSync(
    {
      dir: req.dir,
      generates: req.generates,
      keepMtimes: req.keepMtimes,
      chunking: req.chunking,
      window,
      noDigest: req.noDigest === true,
    },
    emit,
    aborted,
  );
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
