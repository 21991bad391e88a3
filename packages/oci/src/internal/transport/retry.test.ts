import { describe, expect, it } from 'vitest';
import { DigestMismatchError, NetworkError, OciTimeoutError, RegistryError } from '../../errors.js';
import { createRetryPolicy, isTransientError, isTransientStatus } from './retry.js';

// The ONE retry policy. Regression (issue 13): the transport, the token fetch and the upload loop
// used to disagree on what is transient (`>= 500 && !== 501` in the upload loop, also excluding
// 505 in the transport); every loop now asks this policy.
describe('what is transient', () => {
  it.each([
    [200, false],
    [201, false],
    [400, false],
    [401, false],
    [403, false],
    [404, false],
    [405, false],
    [408, true],
    [416, false],
    [429, true],
    [500, true],
    [501, false],
    [502, true],
    [503, true],
    [504, true],
    [505, false],
    [599, true],
    [600, false],
  ])('status %i → %s', (status, transient) => {
    expect(isTransientStatus(status)).toBe(transient);
  });

  const coded = (code: string) => Object.assign(new Error(code), { code });
  it.each([
    ['ECONNRESET', coded('ECONNRESET'), true],
    ['ECONNREFUSED', coded('ECONNREFUSED'), true],
    ['UND_ERR_SOCKET', coded('UND_ERR_SOCKET'), true],
    ['UND_ERR_HEADERS_TIMEOUT', coded('UND_ERR_HEADERS_TIMEOUT'), true],
    ['UND_ERR_BODY_TIMEOUT', coded('UND_ERR_BODY_TIMEOUT'), true],
    ['a transient cause, wrapped', new Error('outer', { cause: coded('EPIPE') }), true],
    ['NetworkError', new NetworkError(), true],
    ['OciTimeoutError', new OciTimeoutError(), true],
    ['DigestMismatchError', new DigestMismatchError(), false],
    ['ENOENT', coded('ENOENT'), false],
    ['a plain Error', new Error('boom'), false],
    ['a string', 'boom', false],
  ])('%s → %s', (_label, error, transient) => {
    expect(isTransientError(error)).toBe(transient);
  });
});

describe('createRetryPolicy().delay', () => {
  const policy = createRetryPolicy({
    retries: 3,
    minRetryDelayMs: 100,
    maxRetryDelayMs: 1000,
    maxRetryAfterMs: 5000,
    random: () => 1,
  });

  it.each([
    ['a transient status, first attempt', 0, { status: 503 }, 100],
    ['backoff doubles', 2, { status: 503 }, 400],
    ['the budget is spent', 3, { status: 503 }, undefined],
    ['a permanent status', 0, { status: 501 }, undefined],
    ['Retry-After within the cap wins over backoff', 0, { status: 429, retryAfterMs: 2000 }, 2000],
    ['Retry-After above the cap: give up now', 0, { status: 429, retryAfterMs: 60_000 }, undefined],
    ['a network error', 1, { error: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }, 200],
    [
      'a registry error with a transient status',
      0,
      { error: new RegistryError('x', { statusCode: 502 }) },
      100,
    ],
    ['a registry error with HTTP 505', 0, { error: new RegistryError('x', { statusCode: 505 }) }, undefined],
    ['a verification failure', 0, { error: new DigestMismatchError() }, undefined],
  ] as const)('%s', (_label, attempt, outcome, expected) => {
    expect(policy.delay(attempt, outcome)).toBe(expected);
  });

  it('a per-request budget overrides the client one', () => {
    expect(policy.delay(0, { status: 503 }, 0)).toBeUndefined();
    expect(policy.delay(4, { status: 503 }, 5)).toBe(1000);
  });

  it('backoff has full jitter between half and all of the ceiling, capped', () => {
    const low = createRetryPolicy({
      retries: 9,
      minRetryDelayMs: 100,
      maxRetryDelayMs: 1000,
      maxRetryAfterMs: 0,
      random: () => 0,
    });
    expect(low.backoff(0)).toBe(50);
    expect(low.backoff(10)).toBe(500);
    expect(policy.backoff(10)).toBe(1000);
  });
});
