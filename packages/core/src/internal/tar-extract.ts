/**
 * Path rules for extracting an entry's tar stream (see docs/format.md "Restore safety"); the
 * extraction itself runs in `../workers/extract.worker.ts`.
 */
import { EntryRefusedError } from '../errors.js';
import { SCRATCH_PREFIX } from './outputs.js';

/** One extracted entry, in archive order. */
export interface ExtractedEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  mtime: Date | undefined;
  linkname?: string;
}

const refuse = (path: string, why: string) =>
  new EntryRefusedError(`entry path ${JSON.stringify(path)} refused: ${why}`, { path });

/** Validates and normalizes an archive path; throws {@link EntryRefusedError}. */
export function safePath(name: string): string {
  if (name.includes('\0')) throw refuse(name, 'contains a NUL byte');
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name) || name.startsWith('\\'))
    throw refuse(name, 'absolute path');
  const trimmed = name.replace(/\/+$/, '');
  const parts = trimmed.split('/');
  if (parts.includes('..')) throw refuse(name, 'contains ".."');
  const clean = parts.filter((p) => p !== '' && p !== '.').join('/');
  if (clean === '') throw refuse(name, 'empty path');
  if (clean.startsWith(SCRATCH_PREFIX))
    throw refuse(name, `names reserved for task-cache's scratch directories start with ${SCRATCH_PREFIX}`);
  return clean;
}
