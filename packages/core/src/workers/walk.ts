/**
 * The synchronous twin of `listOutputs` (internal/outputs.ts) for the pack worker: one thread
 * doing `readdirSync`/`lstatSync` lists ~10× more files per second than awaited async calls.
 * Same selection, same order.
 */
import type { Dirent, Stats } from 'node:fs';
import picomatch from 'picomatch';
import { walkOutputsSync } from '../internal/outputs.js';
import type { PackOutput } from './protocol.js';

function _bases(generates: readonly string[]): string[] {
  const out = new Set<string>();
  for (const g of generates) if (!g.startsWith('!')) out.add(picomatch.scan(g).base.replace(/\/+$/, ''));
  const sorted = [...out].sort((a, b) => a.length - b.length);
  return sorted.filter(
    (b, i) => !sorted.slice(0, i).some((o) => o === '' || b === o || b.startsWith(`${o}/`)),
  );
}

function kindOf(s: Stats | Dirent): PackOutput['kind'] {
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'directory';
  return 'other';
}

const output = (path: string, s: Stats): PackOutput => ({
  path,
  kind: kindOf(s),
  mode: s.mode & 0o777,
  size: s.size,
  mtime: Math.floor(s.mtimeMs / 1000),
});

/** Lists the outputs of `dir` matching `generates`, sorted by path (UTF-8 byte order). */
export function listOutputsSync(
  dir: string,
  generates: readonly string[],
  aborted: () => boolean,
): PackOutput[] {
  return sorted(walkOutputsSync(dir, generates, output, aborted));
}

/**
 * As {@link listOutputsSync} when the outputs hold fewer than `maxBytes` bytes of files and fewer
 * than `maxFiles` entries; `undefined` as soon as the walk finds more (it stops there).
 */
export function listSmallOutputsSync(
  dir: string,
  generates: readonly string[],
  maxBytes: number,
  maxFiles: number,
): PackOutput[] | undefined {
  let bytes = 0;
  let count = 0;
  const counted = (path: string, s: Stats): PackOutput => {
    const o = output(path, s);
    count++;
    if (o.kind === 'file') bytes += o.size;
    return o;
  };
  const over = () => bytes >= maxBytes || count >= maxFiles;
  let found: PackOutput[];
  try {
    found = walkOutputsSync(dir, generates, counted, over);
  } catch (err) {
    if (over()) return undefined;
    throw err;
  }
  return over() ? undefined : sorted(found);
}

function sorted(found: PackOutput[]): PackOutput[] {
  // NOTE: sort on precomputed UTF-8 keys (comparePaths encodes both paths on every comparison).
  const keyed = found.map((o) => ({ o, key: Buffer.from(o.path) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.o);
}
