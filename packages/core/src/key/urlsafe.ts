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
      `invalid cache key "${key.slice(0, 40)}…": ${key.length} characters, an OCI tag has at most ${MAX_TAG_LENGTH}; shorten the task name (the default key is <urlsafe(task)>-<64-char checksum>, so keep urlsafe(task) within 63 characters) or pass a shorter key`,
    );
  if (!isValidTag(key))
    throw new CacheConfigError(
      'CACHE_ERR_INVALID_KEY',
      `invalid cache key "${key}": an OCI tag may only contain [A-Za-z0-9._-] and must not start with "." or "-"; wrap the name in urlsafe() (Taskfile: {{urlsafe .TASK}})`,
    );
  return key;
}

/** The default key of a task: `<urlsafe(task)>-<checksum>`, validated. */
export function defaultKey(task: string, checksum: string): string {
  return validateKey(`${urlsafe(task)}-${checksum}`);
}
