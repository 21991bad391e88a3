import { TAG_PATTERN } from '@task-cache/oci';
import picomatch from 'picomatch';
import { InvalidOptionError } from '../errors.js';

export function checkString(field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new InvalidOptionError(field, 'must be a non-empty string');
  return v;
}

export function checkTag(v: unknown, field = 'tag'): string {
  const tag = checkString(field, v);
  if (!TAG_PATTERN.test(tag)) {
    throw new InvalidOptionError(
      field,
      `${JSON.stringify(tag.slice(0, 200))} is not a valid OCI tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}); map it with urlsafe()`,
    );
  }
  return tag;
}

/**
 * Paths a restore never writes, replaces or deletes and a save never stores, whatever the globs:
 * git's own directory, at the top and in nested checkouts.
 */
export const ALWAYS_PROTECTED: readonly string[] = ['.git', '.git/**', '**/.git', '**/.git/**'];

/** Probe paths: a glob matching one of them matches (nearly) the whole task directory. */
const WHOLE_DIR_PROBES = ['task-cache-probe', 'task-cache-probe/task-cache-probe'];
const GIT_PROBES = ['.git', '.git/config', '.git/objects/00/task-cache-probe'];

/** Options of {@link checkGenerates}. */
export interface GeneratesRules {
  /** Accept globs that match the whole task directory or `.git` (the `allowBroadGenerates` opt-in). */
  allowBroad?: boolean;
}

/**
 * Validates `generates` (relative globs, no `..`, no negation). Unless `allowBroad`, a glob that
 * matches the whole task directory (`**`, `*`) or anything under `.git` is refused too: a
 * restore makes every path matching `generates` equal to the entry, so such a glob lets it
 * delete the project (issue 16).
 */
export function checkGenerates(
  v: unknown,
  rules: GeneratesRules = {},
  field = 'generates',
): readonly string[] {
  if (!Array.isArray(v) || v.length === 0 || v.some((g) => typeof g !== 'string' || g === '')) {
    throw new InvalidOptionError(field, 'must be a non-empty array of glob strings');
  }
  for (const g of v as string[]) {
    if (g.startsWith('/') || /^[A-Za-z]:[\\/]/.test(g) || g.split(/[\\/]/).includes('..')) {
      throw new InvalidOptionError(
        field,
        `glob ${JSON.stringify(g)} must be relative to the task directory, without ".." (outputs live inside the task directory)`,
      );
    }
    if (g.startsWith('!'))
      throw new InvalidOptionError(field, `negated glob ${JSON.stringify(g)} is not supported`);
    if (rules.allowBroad) continue;
    const match = picomatch(g, { dot: true });
    if (WHOLE_DIR_PROBES.some((p) => match(p))) {
      throw new InvalidOptionError(
        field,
        `glob ${JSON.stringify(g)} matches the whole task directory: a restore makes every matching path equal to the entry and would delete your sources; name the output directories instead (e.g. "dist/**"), or set allowBroadGenerates: true for an exotic layout`,
      );
    }
    if (GIT_PROBES.some((p) => match(p))) {
      throw new InvalidOptionError(
        field,
        `glob ${JSON.stringify(g)} matches paths under .git: name the output directories instead (e.g. "dist/**"), or set allowBroadGenerates: true for an exotic layout`,
      );
    }
  }
  return v as string[];
}

/** `sources`: an array of relative globs without `..` (absolute paths would hash another tree). */
export function checkSources(v: unknown, field = 'sources'): readonly string[] {
  if (!Array.isArray(v) || v.some((g) => typeof g !== 'string'))
    throw new InvalidOptionError(field, 'must be an array of globs');
  for (const g of v as string[]) {
    const body = g.startsWith('!') ? g.slice(1) : g;
    if (body.startsWith('/') || /^[A-Za-z]:[\\/]/.test(body) || body.split(/[\\/]/).includes('..')) {
      throw new InvalidOptionError(
        field,
        `glob ${JSON.stringify(g)} must be relative to the task directory, without ".."`,
      );
    }
  }
  return v as string[];
}

/** `protect` globs, as `sources` (a `!` glob excludes from the protection); `undefined` is none. */
export function checkProtect(v: unknown, field = 'protect'): readonly string[] {
  if (v === undefined) return [];
  return checkSources(v, field).filter((g) => g !== '' && g !== '!');
}

/**
 * The internal output selection: the `generates` globs, then every protected glob (`protect`
 * and {@link ALWAYS_PROTECTED}) as a negation (a negated `protect` glob, `!Y`, becomes `!!Y`:
 * not protected by that list). `outputMatcher` (internal/outputs.ts) reads it: a path is an
 * output when it matches a glob and is not protected. Users cannot pass negations in
 * `generates` (`checkGenerates` refuses them), so a `!` here is always ours.
 */
export function outputSelection(generates: readonly string[], protect: readonly string[]): string[] {
  return [...generates, ...[...protect, ...ALWAYS_PROTECTED].map((g) => `!${g}`)];
}

export function checkInt(field: string, v: unknown, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(field, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

export function checkSize(field: string, v: unknown, def: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !(v >= 0))
    throw new InvalidOptionError(field, `must be a non-negative number, got ${String(v)}`);
  return v;
}

export function checkBoolean(field: string, v: unknown, def: boolean): boolean {
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw new InvalidOptionError(field, `must be a boolean, got ${typeof v}`);
  return v;
}

export function checkFunction<F>(field: string, v: unknown): F | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'function') throw new InvalidOptionError(field, `must be a function, got ${typeof v}`);
  return v as F;
}

export function checkOneOf<T extends string>(field: string, v: unknown, values: readonly T[], def: T): T {
  if (v === undefined) return def;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    const list = values.map((x) => JSON.stringify(x));
    const expected = list.length > 1 ? `${list.slice(0, -1).join(', ')} or ${list.at(-1)}` : list[0];
    throw new InvalidOptionError(field, `expected ${expected}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** `stateDir`: a directory, or `false` (remember nothing). `undefined` stays `undefined`. */
export function checkStateDir(field: string, v: unknown): string | false | undefined {
  if (v === undefined || v === false) return v;
  return checkString(field, v);
}

/**
 * The rules of the options that several public entry points share (`createCache`, a run's
 * `policy`, `saveEntry`, `restoreEntry`): one definition, so a value one accepts the others
 * accept too (issue 13: `createCache({ concurrency: 300 })` was accepted and then failed every
 * save). Each rule returns the value, or the default for `undefined`, and throws
 * {@link InvalidOptionError} naming `field`.
 */
export const SHARED_OPTIONS = {
  /** Parallel blob transfers. */
  concurrency: (field: string, v: unknown): number => checkInt(field, v, 8, 1, 256),
  /** zstd level. */
  compressionLevel: (field: string, v: unknown): number => checkInt(field, v, 3, 1, 22),
  /** Uncompressed bytes; the default differs per entry point. */
  maxEntrySize: (field: string, v: unknown, def: number): number => checkSize(field, v, def),
  /** zstd implementation. */
  codec: (field: string, v: unknown): 'auto' | 'node' | 'zstd-codec' =>
    checkOneOf(field, v, ['auto', 'node', 'zstd-codec'] as const, 'auto'),
  stateDir: checkStateDir,
} as const;
