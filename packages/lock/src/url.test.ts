import { describe, expect, it } from 'vitest';
import { LockConfigError } from './errors.js';
import { describeLockUrl, type LockUrl, parseLockUrl, type RedisStandaloneLockUrl } from './url.js';

const redisUrl = (url: string): RedisStandaloneLockUrl => {
  const parsed = parseLockUrl(url);
  if (parsed.kind !== 'redis' || parsed.deployment !== 'standalone')
    throw new Error(`expected a standalone redis URL, got ${parsed.kind}`);
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
      deployment: 'standalone',
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
    ['redis://:pa/ss@h/k', "holds '/', '?' or '#', percent-encode them"],
    ['redis://:pa#ss@h/k', "holds '/', '?' or '#', percent-encode them"],
    // The authority ends at the '?' inside the password: the rest must not be echoed as a query.
    ['redis://u:pa@x?secretpart@h/k', "holds '/', '?' or '#', percent-encode them"],
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
    for (const secret of [
      'p@ss',
      'pa/ss',
      'pa#ss',
      'ss@h',
      'secretpart',
      '%E0%A4%A',
      'pass%zzword',
      'us%E0er',
    ])
      expect(err.message).not.toContain(secret);
  });

  it.each([
    [undefined, 'expected a string or a URL, got undefined'],
    [null, 'expected a string or a URL, got null'],
    [42, 'expected a string or a URL, got number'],
  ])('%s (not a string) → LockConfigError', (value, expected) => {
    expect(configError(value).message).toContain(expected);
  });

  it('several hosts in redis:// name the forms that take a host list', () => {
    expect(configError('redis://:pw@h1:6379,h2:6379/k').message).toContain(
      'redis:// takes one host; for several use redis+sentinel:// (sentinels) or redis+cluster://',
    );
  });
});

describe('parseLockUrl: Sentinel (issue 18)', () => {
  it('parses the sentinels (default port 26379), the master name, the key and the sentinel options', () => {
    expect(
      parseLockUrl(
        'redis+sentinel://ci:Pw%2F1@s1.example.com,s2.example.com:26380,[::1]/my%20master/lock:build?db=2&sentinel_username=sent&sentinel_password=S%40pw',
      ),
    ).toEqual({
      kind: 'redis',
      deployment: 'sentinel',
      tls: false,
      username: 'ci',
      password: 'Pw/1',
      caPath: undefined,
      key: 'lock:build',
      sentinels: [
        { host: 's1.example.com', port: 26379 },
        { host: 's2.example.com', port: 26380 },
        { host: '::1', port: 26379 },
      ],
      masterName: 'my master',
      db: 2,
      sentinelUsername: 'sent',
      sentinelPassword: 'S@pw',
    });
    expect(parseLockUrl('rediss+sentinel://:pw@s1:5000/mymaster?ca=/etc/ca.pem')).toMatchObject({
      deployment: 'sentinel',
      tls: true,
      caPath: '/etc/ca.pem',
      key: undefined,
      masterName: 'mymaster',
      sentinels: [{ host: 's1', port: 5000 }],
    });
    // The key may contain slashes: only the first segment is the master name.
    expect(parseLockUrl('redis+sentinel://s1/m/a/b')).toMatchObject({ masterName: 'm', key: 'a/b' });
  });

  it.each([
    ['redis+sentinel://:pw@s1:26379', 'the master name is missing'],
    ['redis+sentinel://:pw@s1:26379/', 'the master name is missing'],
    ['redis+sentinel://:pw@s1,,s2/m', 'the host list contains an empty entry'],
    ['redis+sentinel://:pw@s1:0/m', 'the port "0" is not a number'],
    ['redis+sentinel://:pw@s1,s2:x/m', 'the port "x" is not a number'],
    ['redis+sentinel://:pw@/m', 'the host is missing'],
    ['redis+sentinel://:pw@s1/m?ca=/x', '?ca is only valid with rediss+sentinel://'],
    ['redis+sentinel://:pw@s1/m?sentinel_password=', '?sentinel_password must not be empty'],
    ['redis+sentinel://:pw@s1/m?sentinel_password=a%zzb', 'the ?sentinel_password value contains an invalid'],
    ['redis+sentinel://:pw@s1/m?sentinel_password=x&sentinel_password=y', 'is given twice'],
    ['redis+sentinel://:pw@s1/m?sentinelPassword=x', 'unknown query parameter "sentinelPassword"'],
    ['redis+sentinel://:p@ss@s1/m', "unencoded '@'"],
    ['redis+sentinel:s1/m', 'expected redis+sentinel://'],
    ['redis+sentinel://:pw@s1/%E0%A4', 'the master name contains an invalid percent-encoding'],
  ])('%s → LockConfigError naming the problem, no password', (url, expected) => {
    const err = configError(url);
    expect(err.message).toContain(expected);
    for (const secret of [':pw', 'p@ss', 'a%zzb'])
      expect(err.message.replace(/redis\+sentinel:\/\/\[USER\]\[:PASSWORD\]/g, '')).not.toContain(secret);
  });
});

describe('parseLockUrl: Cluster (issue 18)', () => {
  it('parses the seed nodes (default port 6379) and the key', () => {
    expect(parseLockUrl('redis+cluster://u:pw@n1:7000,n2,[::1]:7002/lock:{build}')).toEqual({
      kind: 'redis',
      deployment: 'cluster',
      tls: false,
      username: 'u',
      password: 'pw',
      caPath: undefined,
      key: 'lock:{build}',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 6379 },
        { host: '::1', port: 7002 },
      ],
    });
    expect(parseLockUrl('rediss+cluster://n1?ca=/ca.pem')).toMatchObject({
      tls: true,
      caPath: '/ca.pem',
      key: undefined,
      nodes: [{ host: 'n1', port: 6379 }],
    });
  });

  it.each([
    ['redis+cluster://:pw@n1/k?db=1', '?db is not supported by Redis Cluster'],
    ['redis+cluster://:pw@n1,/k', 'the host list contains an empty entry'],
    ['redis+cluster://:pw@n1/k?sentinel_password=x', 'unknown query parameter "sentinel_password"'],
    ['rediss+cluster://:pw@n1/k?ca=', '?ca must be a file path'],
    ['redis+cluster://:pw@n1/k?ca=/x', '?ca is only valid with rediss+cluster://'],
    ['redis+clustr://n1', 'unsupported scheme "redis+clustr:"'],
  ])('%s → LockConfigError naming the problem', (url, expected) => {
    expect(configError(url).message).toContain(expected);
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

  it('Sentinel and Cluster: hosts and master name, never a password or a query secret', () => {
    expect(
      describeLockUrl(
        parseLockUrl('rediss+sentinel://u:secret@s1,[::1]:5/m%2Fx/k?sentinel_password=Sent-Secret&db=1'),
      ),
    ).toBe('rediss+sentinel://u:***@s1:26379,[::1]:5/m%2Fx');
    expect(describeLockUrl(parseLockUrl('redis+cluster://:secret@n1:7000,n2/k'))).toBe(
      'redis+cluster://:***@n1:7000,n2:6379',
    );
  });
});
