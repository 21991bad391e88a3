import { describe, expect, it } from 'vitest';
import { InvalidReferenceError, NameInvalidError, TagInvalidError } from './errors.js';
import { formatReference, isValidTag, parseReference, validateRepository, validateTag } from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    [
      'oci://127.0.0.1:5000/team/cache',
      { registry: '127.0.0.1:5000', repository: 'team/cache', plainHttp: false },
    ],
    [
      'oci://harbor.example.com/p/r:v1.2_3-x',
      { registry: 'harbor.example.com', repository: 'p/r', tag: 'v1.2_3-x' },
    ],
    [`oci://h/r@${D}`, { registry: 'h', repository: 'r', digest: D }],
    [`oci://h:443/a/b:t@${D}`, { registry: 'h:443', repository: 'a/b', tag: 't', digest: D }],
    ['oci://localhost:5000/a__b/c-d/e.f?plain-http=true', { repository: 'a__b/c-d/e.f', plainHttp: true }],
    ['oci://[::1]:5000/r?ca=%2Ftmp%2Fca.pem', { registry: '[::1]:5000', ca: '/tmp/ca.pem' }],
    ['oci://h/r?plain-http=false', { plainHttp: false }],
  ])('parses %s', (input, expected) => {
    expect(parseReference(input)).toMatchObject(expected);
  });

  it.each([
    ['', /non-empty/],
    ['docker://h/r', /must start with "oci:\/\/"/],
    ['oci://h', /has no repository/],
    ['oci://h/Upper', /lowercase/],
    ['oci://h/a//b', /is invalid/],
    ['oci://h/a-/b', /is invalid/],
    ['oci://h/r:.dot', /may not start with "\."/],
    ['oci://h/r:-dash', /may not start with "-"/],
    [`oci://h/r:${'x'.repeat(129)}`, /129 characters/],
    ['oci://h/r:bad$tag', /outside/],
    ['oci://h/r@sha256:abc', /invalid digest/],
    [`oci://h/r@md5:${'a'.repeat(32)}`, /invalid digest/],
    ['oci://h:99999/r', /invalid port/],
    ['oci://bad_host!/r', /invalid host/],
    ['oci://user:secret@h/r', /may not carry credentials/],
    ['oci://h/r?plain-http=yes', /"plain-http" must be "true" or "false"/],
    ['oci://h/r?insecure=true', /unknown query parameter "insecure"/],
    ['oci://h/r?ca=', /"ca" needs a file path/],
    ['oci://h/r#frag', /fragment/],
  ])('rejects %s', (input, message) => {
    let error: unknown;
    try {
      parseReference(input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidReferenceError);
    expect((error as InvalidReferenceError).code).toBe('OCI_ERR_INVALID_REFERENCE');
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('secret');
  });

  it('round-trips through formatReference', () => {
    const input = `oci://h:5000/a/b:t@${D}?ca=%2Fx%2Fca.pem&plain-http=true`;
    expect(parseReference(formatReference(parseReference(input)))).toEqual(parseReference(input));
  });
});

describe('tags and repository names', () => {
  it.each(['a', '_', 'A9', 'v1.0.0-rc.1', 'x'.repeat(128), '0'])('accepts tag %s', (tag) => {
    expect(isValidTag(tag)).toBe(true);
    expect(validateTag(tag)).toBe(tag);
  });
  it.each(['.a', '-a', 'x'.repeat(129), '', 'a/b', 'a:b', 'a b', 'é'])('refuses tag %j', (tag) => {
    expect(isValidTag(tag)).toBe(false);
    expect(() => validateTag(tag)).toThrow(TagInvalidError);
  });
  it.each(['a', 'a/b/c', 'a.b', 'a_b', 'a__b', 'a--b', 'a-b-c/d0'])('accepts repository %s', (name) => {
    expect(validateRepository(name)).toBe(name);
  });
  it.each([
    '',
    'A',
    'a/',
    '/a',
    'a___b',
    'a..b',
    '.a',
    'a b',
    'a'.repeat(256),
  ])('refuses repository %j', (name) => {
    expect(() => validateRepository(name)).toThrow(NameInvalidError);
  });
});
