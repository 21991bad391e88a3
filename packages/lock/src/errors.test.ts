import { describe, expect, it } from 'vitest';
import { LeaseLostError, LockConfigError, LockError, LockUnavailableError } from './errors.js';

describe('error classes', () => {
  const cause = new Error('root');
  it.each([
    [new LockConfigError('auth', 'bad auth', { cause }), 'LockConfigError', 'LOCK_CONFIG', 'bad auth'],
    [new LockUnavailableError('oom', 'full', { cause }), 'LockUnavailableError', 'LOCK_UNAVAILABLE', 'full'],
    [
      new LeaseLostError('stolen', 'k', 7, { cause }),
      'LeaseLostError',
      'LEASE_LOST',
      'lease on lock key "k" (fence 7) lost: the lock key no longer holds this lease',
    ],
  ])('%s', (error, name, code, message) => {
    expect(error).toBeInstanceOf(LockError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    expect(error.cause).toBe(cause);
  });

  it('LeaseLostError carries key, fence and reason', () => {
    const e = new LeaseLostError('expired', 'key', 42);
    expect([e.reason, e.key, e.fence]).toEqual(['expired', 'key', 42]);
    expect(e.message).toContain('could not be renewed before its TTL ran out');
    expect(new LeaseLostError('closed', 'k', 1).message).toContain('the lock was closed');
  });
});
