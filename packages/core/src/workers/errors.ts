import { EntryCorruptError, EntryOutputsError, EntryRefusedError, EntryTooLargeError } from '../errors.js';
import type { WorkerFailure } from './protocol.js';

/** Turns a failure reported by a worker back into the typed error it stands for. */
export function failureToError(f: WorkerFailure, digest?: string): Error {
  switch (f.kind) {
    case 'corrupt':
      return new EntryCorruptError(f.message, digest === undefined ? {} : { digest });
    case 'too-large':
      return new EntryTooLargeError(f.message, { limit: f.limit ?? 0, size: f.size ?? 0 });
    case 'refused':
      return new EntryRefusedError(f.message, f.path === undefined ? {} : { path: f.path });
    case 'outputs':
      return new EntryOutputsError(f.message, f.path === undefined ? {} : { path: f.path });
    case 'fs': {
      const err = new Error(f.message) as NodeJS.ErrnoException;
      if (f.code !== undefined) err.code = f.code;
      if (f.syscall !== undefined) err.syscall = f.syscall;
      if (f.path !== undefined) err.path = f.path;
      return err;
    }
    default:
      return new Error(f.message);
  }
}
