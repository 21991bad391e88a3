import { describe, expect, it } from 'vitest';
import { LockConfigError } from './errors.js';
import { parseLockUrl, redactLockUrl } from './url.js';

describe('parseLockUrl', () => {
  it('parses user, password, host, port and the path as the lock key', () => {
    expect(parseLockUrl('redis://:s3cret@cache.example.com:6380/lock:build-3f2a')).toEqual({
      tls: false,
      host: 'cache.example.com',
      port: 6380,
      username: undefined,
      password: 's3cret',
      db: 0,
      caPath: undefined,
      key: 'lock:build-3f2a',
    });
    const u = parseLockUrl('rediss://ci%2Duser:pw@[::1]/a%2Fb?db=3&ca=/etc/ca.pem');
    expect(u).toMatchObject({
      tls: true,
      host: '::1',
      port: 6379,
      username: 'ci-user',
      password: 'pw',
      db: 3,
    });
    expect(u).toMatchObject({ caPath: '/etc/ca.pem', key: 'a/b' });
    expect(parseLockUrl(new URL('redis://h')).key).toBeUndefined();
  });

  it('percent-decodes @ / # : in the password', () => {
    expect(parseLockUrl('redis://:a%40b%2Fc%23d%3Ae@h:1/k').password).toBe('a@b/c#d:e');
  });

  it.each([
    ['redis://:p@ss@h/k', "unencoded '@'"],
    ['redis://:pa/ss@h/k', "unencoded '/', '?' or '#'"],
    ['redis://:pa#ss@h/k', "unencoded '/', '?' or '#'"],
    ['redis://:pw@h/k?db=abc', '?db must be a non-negative integer, got "abc"'],
    ['redis://:pw@h/k?db=-1', '?db must be a non-negative integer'],
    ['redis://:pw@h:http/k', 'the port "http" is not a number'],
    ['redis://:pw@h:70000/k', 'the port "70000" is not a number'],
    ['redis://:pw@/k', 'the host is missing'],
    ['http://h/k', 'unsupported scheme "http:"'],
    ['h:6379', 'expected redis://'],
    ['redis://:pw@h/k?ca=/x', '?ca is only valid with rediss://'],
    ['redis://:pw@h/k?timeout=1', 'unknown query parameter "timeout"'],
    ['redis://:%E0%A4%A@h/k', 'the password contains an invalid percent-encoding'],
  ])('%s → LockConfigError naming the problem, without the password', (url, expected) => {
    let caught: unknown;
    try {
      parseLockUrl(url);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(LockConfigError);
    const err = caught as LockConfigError;
    expect(err.code).toBe('LOCK_CONFIG');
    expect(err.reason).toBe('url');
    expect(err.message).toContain(expected);
    for (const secret of ['p@ss', 'pa/ss', 'pa#ss', 'ss@h', '%E0%A4%A'])
      expect(err.message).not.toContain(secret);
  });

  it('redacts the password', () => {
    expect(redactLockUrl(parseLockUrl('redis://u:secret@h:1/k'))).toBe('redis://u:***@h:1');
    expect(redactLockUrl(parseLockUrl('rediss://[::1]/k'))).toBe('rediss://[::1]:6379');
  });
});
