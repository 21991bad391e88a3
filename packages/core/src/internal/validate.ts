import { TAG_PATTERN } from '@task-cache/oci';
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

export function checkGenerates(v: unknown): readonly string[] {
  if (!Array.isArray(v) || v.length === 0 || v.some((g) => typeof g !== 'string' || g === '')) {
    throw new InvalidOptionError('generates', 'must be a non-empty array of glob strings');
  }
  for (const g of v as string[]) {
    if (g.startsWith('/') || g.split('/').includes('..')) {
      throw new InvalidOptionError(
        'generates',
        `glob ${JSON.stringify(g)} must be relative to the task directory, without ".."`,
      );
    }
    if (g.startsWith('!'))
      throw new InvalidOptionError('generates', `negated glob ${JSON.stringify(g)} is not supported`);
  }
  return v as string[];
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
