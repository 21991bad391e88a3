import { describe, expect, it } from 'vitest';
import { LockConfigError } from './errors.js';
import { describeLockUrl, type LockUrl, parseLockUrl, type RedisLockUrl } from './url.js';

const redisUrl = (url: string): RedisLockUrl => {
  const parsed = parseLockUrl(url);
  if (parsed.kind !== 'redis') throw new Error(`expected a redis URL, got ${parsed.kind}`);
  return parsed;
};

const configError = (url: unknown): LockConfigError => {
  let caught: unknown;
  try {
    parseLockUrl(url as string);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(LockConfigError);
  const err = caught as LockConfigError;
  expect(err.code).toBe('LOCK_ERR_CONFIG');
  expect(err.reason).toBe('url');
  return err;
};

describe('parseLockUrl', () => {
  it('parses user, password, host, port and the path as the lock key', () => {
    expect(parseLockUrl('redis://:s3cret@cache.example.com:6380/lock:build-3f2a')).toEqual({
      kind: 'redis',
      tls: false,
      host: 'cache.example.com',
      port: 6380,
      username: undefined,
      password: 's3cret',
      db: 0,
      caPath: undefined,
      key: 'lock:build-3f2a',
    });
    const u = redisUrl('rediss://ci%2Duser:pw@[::1]/a%2Fb?db=3&ca=/etc/ca.pem');
    expect(u).toMatchObject({
      tls: true,
      host: '::1',
      port: 6379,
      username: 'ci-user',
      password: 'pw',
      db: 3,
    });
    expect(u).toMatchObject({ caPath: '/etc/ca.pem', key: 'a/b' });
    expect(parseLockUrl(new URL('redis://h'))).toMatchObject({ kind: 'redis', key: undefined });
  });

  it("parses the operator guide's lock URL (the CI variable holds ':PASSWORD@HOST:6379')", () => {
    expect(redisUrl('redis://:Pw-1@redis.example.com:6379/lock:build-0a1b2c')).toMatchObject({
      host: 'redis.example.com',
      port: 6379,
      password: 'Pw-1',
      key: 'lock:build-0a1b2c',
    });
  });

  it.each(['', '   ', 'local:', 'local://', ' local: ', 'LOCAL:'])('%j is the local lock', (url) => {
    expect(parseLockUrl(url)).toEqual({ kind: 'local' });
  });

  it('percent-decodes @ / # : in the password', () => {
    expect(redisUrl('redis://:a%40b%2Fc%23d%3Ae@h:1/k').password).toBe('a@b/c#d:e');
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
    ['redis:///lock:x', 'the host is missing'],
    ['redis:h:6379/k', 'expected redis://'],
    ['http://h/k', 'unsupported scheme "http:"'],
    ['zk://h', 'unsupported scheme "zk:"'],
    ['h:6379', 'expected redis://'],
    ['redis://:pw@h/k?ca=/x', '?ca is only valid with rediss://'],
    ['redis://:pw@h/k?timeout=1', 'unknown query parameter "timeout"'],
    ['local:/tmp/x', 'local: takes no host, path or parameters'],
    ['local://h', 'local: takes no host, path or parameters'],
    // Regression (issue 13): core's parser let a URIError escape for these; every one is a LockConfigError.
    ['redis://h:6379/lock%E0%A4%A', 'the path (lock key) contains an invalid percent-encoding'],
    ['redis://:%E0%A4%A@h/k', 'the password contains an invalid percent-encoding'],
    ['redis://:pass%zzword@h/k', 'the password contains an invalid percent-encoding'],
    ['redis://us%E0er:pw@h/k', 'the user name contains an invalid percent-encoding'],
    ['redis://h/k%', 'the path (lock key) contains an invalid percent-encoding'],
    ['rediss://h/k?ca=/etc/%E0.pem', 'contains an invalid percent-encoding'],
  ])('%s → LockConfigError naming the problem, without the password', (url, expected) => {
    const err = configError(url);
    expect(err.message).toContain(expected);
    for (const secret of ['p@ss', 'pa/ss', 'pa#ss', 'ss@h', '%E0%A4%A', 'pass%zzword', 'us%E0er'])
      expect(err.message).not.toContain(secret);
  });

  it.each([
    [undefined, 'expected a string or a URL, got undefined'],
    [null, 'expected a string or a URL, got null'],
    [42, 'expected a string or a URL, got number'],
  ])('%s (not a string) → LockConfigError', (value, expected) => {
    expect(configError(value).message).toContain(expected);
  });

  it('leaves room for more deployment forms: other redis+… schemes are unsupported, not misparsed', () => {
    expect(configError('redis+sentinel://h:26379/k').message).toContain(
      'unsupported scheme "redis+sentinel:"',
    );
  });
});

describe('describeLockUrl', () => {
  it('shows scheme, user, host and port, never the password, key or parameters', () => {
    expect(describeLockUrl(parseLockUrl('redis://u:secret@h:1/k?db=2'))).toBe('redis://u:***@h:1');
    expect(describeLockUrl(parseLockUrl('redis://:secret@h/k'))).toBe('redis://:***@h:6379');
    expect(describeLockUrl(parseLockUrl('rediss://[::1]/k'))).toBe('rediss://[::1]:6379');
    expect(describeLockUrl(parseLockUrl(''))).toBe('local:');
    const all: LockUrl[] = [parseLockUrl('local:'), parseLockUrl('redis://h')];
    expect(all.map(describeLockUrl)).toEqual(['local:', 'redis://h:6379']);
  });
});
