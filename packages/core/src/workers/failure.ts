/**
 * A worker's own failure, thrown inside a worker and posted to the main thread as a
 * {@link WorkerFailure} (which `errors.ts` turns back into the typed error).
 */
import type { WorkerFailure } from './protocol.js';

/** An error carrying the failure to post. */
export class Failure extends Error {
  constructor(readonly failure: WorkerFailure) {
    super(failure.message);
  }
}

/** The failure to post for `err`: its own, a file-system error's fields, or its message. */
export function failureOf(err: unknown): WorkerFailure {
  if (err instanceof Failure) return err.failure;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.syscall === 'string')
    return { kind: 'fs', message: e.message, code: e.code, syscall: e.syscall, path: e.path };
  return { kind: 'other', message: e?.message ?? String(err) };
}
