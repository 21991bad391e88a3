import { describe, expect, it } from 'vitest';
import { CacheConfigError } from './errors.js';
import { parseStoreUrl, redactUrl } from './urls.js';

describe('parseStoreUrl', () => {
  it("parses the guide's oci URL with its tag as the key", () => {
    expect(parseStoreUrl(`oci://harbor.example.com/task-cache/build:build-${'a'.repeat(64)}`)).toEqual({
      kind: 'oci',
      registry: 'harbor.example.com',
      repository: 'task-cache/build',
      tag: `build-${'a'.repeat(64)}`,
      plainHttp: false,
    });
  });
  it('parses port, ca and plain-http', () => {
    expect(parseStoreUrl('oci://127.0.0.1:5000/a/b?plain-http=true')).toMatchObject({
      registry: '127.0.0.1:5000',
      repository: 'a/b',
      plainHttp: true,
    });
    expect(parseStoreUrl('oci://h/a/b:t?ca=/etc/ca.pem')).toMatchObject({ tag: 't', ca: '/etc/ca.pem' });
    expect(parseStoreUrl('oci://ghcr.io/o/r?max-pushes-per-minute=1500')).toMatchObject({
      maxBlobPushesPerMinute: 1500,
    });
  });
  it('parses ?format= (the entry form) and refuses unknown forms', () => {
    expect(parseStoreUrl('oci://h/a/b?format=compat')).toMatchObject({ format: 'compat' });
    expect(parseStoreUrl('oci://h/a/b:t?plain-http=true&format=standard')).toMatchObject({
      format: 'standard',
    });
    expect(parseStoreUrl('oci://h/a/b')).not.toHaveProperty('format');
    expect(() => parseStoreUrl('oci://h/a/b?format=docker')).toThrow(
      /format must be auto, standard or compat/,
    );
  });
  it('parses oci-layout with and without a tag, memory, redis and empty', () => {
    expect(parseStoreUrl('oci-layout:/var/cache/tc')).toEqual({ kind: 'oci-layout', path: '/var/cache/tc' });
    expect(parseStoreUrl('oci-layout:./cache:v1')).toEqual({
      kind: 'oci-layout',
      path: './cache',
      tag: 'v1',
    });
    expect(parseStoreUrl('memory://ci')).toEqual({ kind: 'memory', name: 'ci' });
    expect(parseStoreUrl('redis://:pw@h:6379/2?ttl=60')).toEqual({
      kind: 'redis',
      url: 'redis://:pw@h:6379/2?ttl=60',
      ttlSeconds: 60,
    });
    expect(parseStoreUrl('')).toEqual({ kind: 'default' });
  });
  it.each([
    ['oci://robot:pw@h/a/b', /TASK_CACHE_OCI_USER/],
    ['oci://h', /repository is missing/],
    ['oci://h/Upper/Case', /not a valid OCI repository/],
    ['oci://h/a/b?insecure=1', /unknown parameter "insecure"/],
    ['oci://h/a/b:bad/tag', /repository|tag/],
    [`oci://h/a/b:${'t'.repeat(129)}`, /at most 128/],
    ['oci://h/a/b:.bad', /must not start/],
    ['ftp://h/x', /unknown scheme/],
    ['oci://h/a/b?max-pushes-per-minute=0', /max-pushes-per-minute must be a positive integer/],
    ['oci://h/a/b?max-pushes-per-minute=1e3', /max-pushes-per-minute must be a positive integer/],
    ['redis://:pw@h:6379?ttl=-1', /ttl must be/],
  ])('rejects %s', (url, message) => {
    expect(() => parseStoreUrl(url)).toThrow(CacheConfigError);
    expect(() => parseStoreUrl(url)).toThrow(message);
  });
  it('never puts the password in the error', () => {
    expect(() => parseStoreUrl('redis://:s3cret@h:6379?ttl=x')).toThrow(/^(?!.*s3cret)/s);
  });
});

describe('redactUrl', () => {
  it('hides passwords', () => {
    expect(redactUrl('redis://:pw@h:1/x')).toBe('redis://***:***@h:1/x');
    expect(redactUrl('redis://user:pw@h')).toBe('redis://***:***@h');
    expect(redactUrl('redis://h')).toBe('redis://h');
  });
});
