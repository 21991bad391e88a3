import { createHash } from 'node:crypto';
import { isValidTag, MAX_TAG_LENGTH } from '@task-cache/oci';
import { CacheConfigError, InvalidOptionError } from '../errors.js';

// The OCI tag grammar is `@task-cache/oci`'s: these are its very symbols, kept under core's
// public names (`TAG_PATTERN`, `MAX_TAG_LENGTH`).
export { MAX_TAG_LENGTH, TAG_PATTERN } from '@task-cache/oci';

/**
 * Maps any string into the OCI tag alphabet `[A-Za-z0-9._-]`: every other character (`:`, `/`,
 * space, non-ASCII, …) becomes `_`, and a leading `.` or `-` becomes `_` too. The empty string
 * maps to `_`. The mapping is deterministic but NOT injective: distinct names can map to the
 * same string (`ci/build`, `ci:build` and `ci build` all give `ci_build`); give such tasks
 * distinct names or pass an explicit `key`. It does not shorten: a result over 128 characters is
 * rejected by {@link validateKey}.
 * @see https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pulling-manifests
 */
export function urlsafe(value: string): string {
  if (typeof value !== 'string')
    throw new InvalidOptionError('value', `urlsafe: expected a string, got ${typeof value}`);
  const mapped = value.replace(/[^A-Za-z0-9._-]/gu, '_');
  if (mapped === '') return '_';
  return /^[.-]/.test(mapped) ? `_${mapped.slice(1)}` : mapped;
}

/**
 * Throws a {@link CacheConfigError} (`CACHE_ERR_INVALID_KEY`) naming the remedy when `key` cannot be an
 * OCI tag (empty, over 128 characters, characters outside `[A-Za-z0-9._-]`, leading `.`/`-`).
 * Returns the key.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key === '')
    throw new CacheConfigError(
      'CACHE_ERR_INVALID_KEY',
      'invalid cache key: it is empty; pass a key or a task name',
    );
  if (key.length > MAX_TAG_LENGTH)
    throw new CacheConfigError(
      'CACHE_ERR_INVALID_KEY',
      `invalid cache key "${key.slice(0, 40)}…": ${key.length} characters, an OCI tag has at most ${MAX_TAG_LENGTH}; pass a shorter key (default keys shorten long task names by themselves)`,
    );
  if (!isValidTag(key))
    throw new CacheConfigError(
      'CACHE_ERR_INVALID_KEY',
      `invalid cache key "${key}": an OCI tag may only contain [A-Za-z0-9._-] and must not start with "." or "-"; wrap the name in urlsafe() (Taskfile: {{urlsafe .TASK}})`,
    );
  return key;
}

/** Longest task part of a default key: 63 + `-` + a 64-character checksum = 128, a tag's maximum. */
export const MAX_TASK_TAG_LENGTH = 63;

/**
 * The task part of a default key: `urlsafe(task)`, or, when that is over
 * {@link MAX_TASK_TAG_LENGTH} characters, its first 54 characters, `-` and 8 hex digits of the
 * sha256 of the task name — deterministic, readable, and distinct for distinct long names
 * (issue 16: a long name made `run()` throw and the build never ran).
 */
export function taskTag(task: string): string {
  const mapped = urlsafe(task);
  if (mapped.length <= MAX_TASK_TAG_LENGTH) return mapped;
  const hash = createHash('sha256').update(task, 'utf8').digest('hex').slice(0, 8);
  return `${mapped.slice(0, MAX_TASK_TAG_LENGTH - 9)}-${hash}`;
}

/** The default key of a task: `<taskTag(task)>-<checksum>`, validated. */
export function defaultKey(task: string, checksum: string): string {
  return validateKey(`${taskTag(task)}-${checksum}`);
}
