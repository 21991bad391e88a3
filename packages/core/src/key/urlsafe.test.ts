import { describe, expect, it } from 'vitest';
import { CacheConfigError } from '../config/errors.js';
import { defaultKey, taskTag, urlsafe, validateKey } from './urlsafe.js';

describe('urlsafe', () => {
  it.each([
    ['build', 'build'],
    ['ci/build', 'ci_build'],
    ['ci:build', 'ci_build'],
    ['a b', 'a_b'],
    ['.hidden', '_hidden'],
    ['-x', '_x'],
    ['ünï', '_n_'],
    ['', '_'],
    ['v1.2_3-x', 'v1.2_3-x'],
  ])('%j → %j', (input, output) => {
    expect(urlsafe(input)).toBe(output);
    expect(urlsafe(input)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/);
  });

  it('is not injective (documented): distinct names can collide', () => {
    expect(urlsafe('ci/build')).toBe(urlsafe('ci build'));
  });
});

describe('validateKey / defaultKey', () => {
  const sum = 'a'.repeat(64);
  it('builds <urlsafe(task)>-<checksum>', () => {
    expect(defaultKey('ci/build', sum)).toBe(`ci_build-${sum}`);
  });
  it('rejects explicit keys over 128 characters naming the remedy', () => {
    const err = (() => {
      try {
        validateKey('k'.repeat(129));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CacheConfigError);
    expect(err).toMatchObject({ code: 'CACHE_ERR_INVALID_KEY' });
    expect((err as Error).message).toMatch(/at most 128.*shorter key/);
  });
  // Regression (issue 16): a task name over 63 characters made run() throw; the build never ran.
  it('shortens long task names deterministically: readable prefix + hash, never an error', () => {
    const long = `packages/frontend/${'very-long-task-name-'.repeat(5)}`;
    const key = defaultKey(long, sum);
    expect(key).toHaveLength(128);
    expect(key).toBe(defaultKey(long, sum));
    expect(key.startsWith(urlsafe(long).slice(0, 54))).toBe(true);
    expect(taskTag(long)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]{53}-[0-9a-f]{8}$/);
    // Two long names with the same first 54 characters still get different keys.
    expect(defaultKey(`${long}a`, sum)).not.toBe(defaultKey(`${long}b`, sum));
    // Up to 63 characters the name is kept as is.
    expect(taskTag('t'.repeat(63))).toBe('t'.repeat(63));
    expect(taskTag('t'.repeat(64))).not.toBe('t'.repeat(64));
  });
  it('accepts exactly 128 characters', () => {
    expect(validateKey('k'.repeat(128))).toHaveLength(128);
  });
  it.each(['', 'a/b', '.a', '-a', 'a:b', 'a b'])('rejects %j', (key) => {
    expect(() => validateKey(key)).toThrow(CacheConfigError);
  });
  it('names urlsafe as the remedy for bad characters', () => {
    expect(() => validateKey('ci/build')).toThrow(/urlsafe/);
  });
});
