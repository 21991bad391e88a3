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
