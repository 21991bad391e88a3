import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readlink } from 'node:fs/promises';
import { glob } from 'tinyglobby';
import { InvalidOptionError } from '../errors.js';
import { SCRATCH_PREFIX } from '../internal/outputs.js';

/** Inputs of {@link checksum}: the source files plus everything else the outputs depend on. */
export interface ChecksumInputs {
  /** Task directory; globs are relative to it and paths are hashed relative to it. */
  dir: string;
  /** Globs of the source files (`src/**`). Dot files are matched; directories are not hashed. */
  sources: readonly string[];
  /** The task's commands (e.g. `['./build.sh']`); hashed in order. @default [] */
  commands?: readonly string[];
  /**
   * Environment variables the build reads: names are looked up in `envValues` (default
   * `process.env`); an unset variable hashes differently from an empty one. @default []
   */
  env?: readonly string[];
  /** Where `env` names are looked up. @default process.env */
  envValues?: Record<string, string | undefined>;
  /** Tool versions, e.g. `{ node: process.version, tsc: '5.9.3' }`. @default {} */
  tools?: Record<string, string>;
  /** Mix in `process.platform`/`process.arch` (set `true` when outputs are platform specific). @default false */
  platform?: boolean | string;
  /** Any other strings to mix in (a salt, a schema version). @default [] */
  extra?: readonly string[];
  /** Files hashed in parallel. @default 64 */
  concurrency?: number;
  signal?: AbortSignal;
}

/** One hashed source file. */
export interface SourceDigest {
  /** Path relative to `dir`, `/`-separated. */
  path: string;
  /** `sha256:<hex>` of the contents (of the link target string, for a symlink). */
  digest: string;
  /** `x` executable, `-` regular, `l` symlink. */
  kind: 'x' | '-' | 'l';
}

/** Result of {@link checksumDetailed}. */
export interface ChecksumDetails {
  /** Lowercase hex sha256, 64 characters, no prefix (the Taskfile's `.CHECKSUM`). */
  checksum: string;
  /** The hashed files, sorted by path. */
  files: SourceDigest[];
}

// NOTE: files up to this size are read in one call (faster than a stream for the many small
// files of a source tree); larger ones are streamed so memory stays bounded.
const SMALL_FILE = 256 * 1024;

async function hashFile(path: string, size: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  if (size <= SMALL_FILE) {
    hash.update(await readFile(path, { signal }));
  } else {
    const stream = createReadStream(path, { highWaterMark: 1024 * 1024, signal });
    for await (const chunk of stream) hash.update(chunk as Buffer);
  }
  return `sha256:${hash.digest('hex')}`;
}

async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * Like {@link checksum}, also returning the per-file digests (recorded in the entry's config).
 */
export async function checksumDetailed(inputs: ChecksumInputs): Promise<ChecksumDetails> {
  const { dir, sources, signal } = inputs;
  if (typeof dir !== 'string' || dir === '')
    throw new InvalidOptionError('dir', 'checksum: must be a non-empty path');
  if (!Array.isArray(sources)) throw new InvalidOptionError('sources', 'checksum: must be an array of globs');
  const concurrency = inputs.concurrency ?? 64;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new InvalidOptionError('concurrency', `checksum: must be a positive integer, got ${concurrency}`);
  signal?.throwIfAborted();
  const paths =
    sources.length === 0
      ? []
      : await glob([...sources], {
          cwd: dir,
          dot: true,
          // NOTE: tinyglobby drops symlinks unless it follows them, and onlyFiles would drop
          // directory symlinks: list everything, lstat each entry, skip real directories. A
          // symlink is hashed by its target string (dangling ones are not listed).
          onlyFiles: false,
          followSymbolicLinks: true,
          expandDirectories: false,
          // NOTE: core's scratch directories (a restore's staging, left by a killed process) are
          // never part of a checksum (issue 16).
          ignore: [`${SCRATCH_PREFIX}*`, `${SCRATCH_PREFIX}*/**`],
        });
  // NOTE: sort by UTF-16 code units of the `/`-separated relative path: the order then depends on
  // neither the file system's directory order nor the platform.
  const rel = [...new Set(paths.map((p) => p.split('\\').join('/').replace(/\/$/, '')))].sort((a, b) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const all = await mapBounded(rel, concurrency, async (path): Promise<SourceDigest | undefined> => {
    signal?.throwIfAborted();
    const abs = `${dir}/${path}`;
    const st = await lstat(abs);
    if (st.isDirectory()) return undefined;
    if (st.isSymbolicLink()) {
      const target = await readlink(abs);
      return { path, kind: 'l', digest: `sha256:${createHash('sha256').update(target).digest('hex')}` };
    }
    const kind = (st.mode & 0o111) !== 0 ? 'x' : '-';
    return { path, kind, digest: await hashFile(abs, st.size, signal) };
  });
  const files = all.filter((f): f is SourceDigest => f !== undefined);
  signal?.throwIfAborted();

  const h = createHash('sha256');
  const field = (tag: string, value: string) => {
    // Length-prefixed fields: no input can be crafted to collide with another's framing.
    const b = Buffer.from(value, 'utf8');
    h.update(`${tag}:${b.length}:`);
    h.update(b);
    h.update('\n');
  };
  field('v', 'task-cache/checksum/1');
  for (const f of files) field(`f${f.kind}`, `${f.path}\0${f.digest}`);
  for (const c of inputs.commands ?? []) field('cmd', c);
  const envValues = inputs.envValues ?? process.env;
  for (const name of [...(inputs.env ?? [])].sort()) {
    const v = envValues[name];
    field('env', v === undefined ? `${name}\0unset` : `${name}=${v}`);
  }
  for (const [name, version] of Object.entries(inputs.tools ?? {}).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  ))
    field('tool', `${name}=${version}`);
  if (inputs.platform)
    field(
      'platform',
      typeof inputs.platform === 'string' ? inputs.platform : `${process.platform}-${process.arch}`,
    );
  for (const e of inputs.extra ?? []) field('extra', e);
  return { checksum: h.digest('hex'), files };
}

/**
 * A stable digest of a task's inputs — the Taskfile's `.CHECKSUM`: lowercase hex sha256, 64
 * characters, no prefix. It covers the files matching `sources` (their `/`-separated paths
 * relative to `dir`, contents and executable bits, in sorted order; symlinks by their target)
 * and, when given, the commands, declared environment variables, tool versions, platform and
 * extra strings. It does not depend on the file-system order, mtimes, owners or the absolute
 * location of `dir`. Files are hashed in parallel (bounded by `concurrency`); large files are
 * streamed.
 *
 * Keys that miss an input restore stale outputs: declare every environment variable and tool
 * the build reads (`env: ['NODE_ENV']`, `tools: { node: process.version }`).
 */
export async function checksum(inputs: ChecksumInputs): Promise<string> {
  return (await checksumDetailed(inputs)).checksum;
}
