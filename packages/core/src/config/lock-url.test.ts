import { LockConfigError, parseLockUrl as lockPackageParser } from '@task-cache/lock';
import { describe, expect, it } from 'vitest';
import { createCache } from '../run/cache.js';
import { CacheConfigError } from './errors.js';
import { parseLockOption, parseLockUrl } from './lock-url.js';

describe('lock URLs in core', () => {
  it("core's parseLockUrl is the lock package's very function (one parser)", () => {
    expect(parseLockUrl).toBe(lockPackageParser);
  });

  it("parses the guide's lock URL; local and empty are the local lock", () => {
    const sum = 'b'.repeat(64);
    expect(
      parseLockOption(`redis://:pw@redis.example.com:6379/lock:build-${sum}`, 'createCache'),
    ).toMatchObject({
      kind: 'redis',
      host: 'redis.example.com',
      port: 6379,
      password: 'pw',
      key: `lock:build-${sum}`,
    });
    expect(parseLockOption('local:', 'createCache')).toEqual({ kind: 'local' });
    expect(parseLockOption('', 'createCache')).toEqual({ kind: 'local' });
  });

  // Regression (issue 13): core's own parser threw a raw URIError for a malformed percent-encoding, and
  // accepted what the lock package then refused at run time.
  it.each([
    ['redis://h:6379/lock%E0%A4%A', 'the path (lock key) contains an invalid percent-encoding'],
    ['redis://:Secret%E0%A4%A@h:6379/k', 'the password contains an invalid percent-encoding'],
    ['redis://us%zzer:Secret-1@h:6379/k', 'the user name contains an invalid percent-encoding'],
    ['redis://:Sec@ret-1@h:6379/k', "unencoded '@'"],
    ['redis:///lock:x', 'the host is missing'],
    ['zk://h', 'unsupported scheme "zk:"'],
  ])('createCache({ lock: %j }) throws a typed CacheConfigError naming the option', (lock, problem) => {
    let caught: unknown;
    try {
      createCache({ lock });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CacheConfigError);
    expect(caught).not.toBeInstanceOf(URIError);
    const error = caught as CacheConfigError;
    expect(error.code).toBe('CACHE_ERR_INVALID_URL');
    expect(error.message).toContain('createCache: `lock`: invalid lock URL');
    expect(error.message).toContain(problem);
    expect(error.message).not.toMatch(/Secret|Sec@ret/);
    expect(error.cause).toBeInstanceOf(LockConfigError);
  });
});
