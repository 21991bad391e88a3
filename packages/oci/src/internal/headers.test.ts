import { describe, expect, it } from 'vitest';
import { parseLinkNext, parseRetryAfter, parseWarnings, parseWwwAuthenticate } from './headers.js';

describe('parseWwwAuthenticate', () => {
  it('parses a distribution Bearer challenge with several space-separated scopes', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push repository:c:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example.com/token',
          service: 'registry.example.com',
          scope: 'repository:a/b:pull,push repository:c:pull',
        },
      },
    ]);
  });

  it('handles a missing service and scope, errors, spacing and case', () => {
    expect(parseWwwAuthenticate('bearer  Realm = "https://r/t" , error="invalid_token"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://r/t', error: 'invalid_token' } },
    ]);
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://r/t",service="s",scope="repository:x:push",error="insufficient_scope"',
      )[0]?.params.error,
    ).toBe('insufficient_scope');
  });

  it('parses quoted commas and escapes, unquoted values, several challenges and token68', () => {
    expect(
      parseWwwAuthenticate('Basic realm="Registry, \\"quoted\\"", Bearer realm=https://r/t,service=svc'),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'Registry, "quoted"' } },
      { scheme: 'bearer', params: { realm: 'https://r/t', service: 'svc' } },
    ]);
    expect(parseWwwAuthenticate(['Negotiate abc123==', 'Basic realm="x"'])).toEqual([
      { scheme: 'negotiate', params: { token68: 'abc123==' } },
      { scheme: 'basic', params: { realm: 'x' } },
    ]);
  });

  it('never throws on garbage', () => {
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(() => parseWwwAuthenticate('=,,"unterminated')).not.toThrow();
  });
});

describe('parseLinkNext', () => {
  const base = 'https://r.example/v2/a/tags/list?n=10';
  it('resolves a relative next link', () => {
    expect(parseLinkNext('</v2/a/tags/list?n=10&last=t9>; rel="next"', base)).toBe(
      'https://r.example/v2/a/tags/list?n=10&last=t9',
    );
  });
  it('picks rel=next among several links, unquoted rel, absolute URL', () => {
    expect(parseLinkNext('<https://x/prev>; rel="prev", <https://x/next?last=a>; rel=next', base)).toBe(
      'https://x/next?last=a',
    );
  });
  it('returns undefined without a next link', () => {
    expect(parseLinkNext(undefined, base)).toBeUndefined();
    expect(parseLinkNext('<https://x/prev>; rel="prev"', base)).toBeUndefined();
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('0', now)).toBe(0);
  });
  it('reads an HTTP date', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
  });
  it('ignores junk', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
  });
});

describe('parseWarnings', () => {
  it('extracts warn-text', () => {
    expect(parseWarnings(['299 - "first"', '299 registry "second \\"q\\"", 299 - "third"'])).toEqual([
      'first',
      'second "q"',
      'third',
    ]);
  });
});
