import { glob } from 'tinyglobby';
import { InvalidOptionError } from '../errors.js';
import { outputMatcher, SCRATCH_PREFIX } from '../internal/outputs.js';
import type { SourceDigest } from '../key/checksum.js';
import type { CallContext } from './context.js';

/** Core's scratch directories, never a source nor an output (tinyglobby `ignore` globs). */
export const SCRATCH_IGNORE = [`${SCRATCH_PREFIX}*`, `${SCRATCH_PREFIX}*/**`];

/** The `generates` globs that match no file under `dir` (declared outputs the build did not produce). */
export async function missingOutputs(dir: string, generates: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const pattern of generates) {
    const found = await glob([pattern], { cwd: dir, dot: true, onlyFiles: true, expandDirectories: false });
    if (found.length === 0) missing.push(pattern);
  }
  return missing;
}

/** What {@link checkSourcesAndOutputs} looks at. */
export interface TaskFiles {
  dir: string;
  sources: readonly string[];
  generates?: readonly string[];
  allowBroadGenerates?: boolean;
}

const list = (globs: readonly string[]) => globs.map((g) => JSON.stringify(g)).join(', ');

/**
 * Checks a task's sources against its outputs before anything runs (issue 16):
 * - `sources` that match no file: a `SOURCES_EMPTY` warning (strict mode: an error). The key would
 *   cover no file, so every later run would be a hit whatever the project holds;
 * - a `generates` glob matching a source file: an {@link InvalidOptionError} (unless
 *   `allowBroadGenerates`), since a restore makes the outputs equal to the entry.
 * `files` are the source files the key was computed from, when it was (else they are globbed).
 */
export async function checkSourcesAndOutputs(
  call: CallContext,
  o: TaskFiles,
  files: readonly SourceDigest[] | undefined,
): Promise<void> {
  if (o.sources.length === 0) return;
  const paths =
    files?.map((f) => f.path) ??
    (await glob([...o.sources], {
      cwd: o.dir,
      dot: true,
      onlyFiles: true,
      expandDirectories: false,
      ignore: SCRATCH_IGNORE,
    }));
  if (paths.length === 0) {
    call.warn(
      'SOURCES_EMPTY',
      `sources ${list(o.sources)} match no file under ${JSON.stringify(o.dir)}: the key covers no file, so every later run would restore the same entry whatever the project holds; fix the globs (they are relative to the task directory)`,
    );
    return;
  }
  if (o.generates === undefined || o.allowBroadGenerates === true) return;
  for (const g of o.generates) {
    const match = outputMatcher([g]);
    const hit = paths.find((p) => match(p));
    if (hit !== undefined) {
      throw new InvalidOptionError(
        'generates',
        `glob ${JSON.stringify(g)} matches the source file ${JSON.stringify(hit)}: a restore makes every output equal to the entry and could replace it; narrow generates (or sources) so they do not overlap, or set allowBroadGenerates: true (sources are then never saved nor restored)`,
      );
    }
  }
}
