import { describe, expect, it } from 'vitest';
import {
  LeaseLostError,
  LockConfigError,
  LockError,
  LockTimeoutError,
  LockUnavailableError,
} from './errors.js';

describe('error classes', () => {
  const cause = new Error('root');
  const table = [
    [new LockConfigError('auth', 'bad auth', { cause }), 'LockConfigError', 'LOCK_ERR_CONFIG', 'bad auth'],
    [
      new LockUnavailableError('oom', 'full', { cause }),
      'LockUnavailableError',
      'LOCK_ERR_UNAVAILABLE',
      'full',
    ],
    [
      new LeaseLostError('stolen', 'k', 7, { cause }),
      'LeaseLostError',
      'LOCK_ERR_LEASE_LOST',
      'lease on lock key "k" (fence 7) lost: the lock key no longer holds this lease',
    ],
    [
      new LockTimeoutError('/x/index.json.lock', 'timed out waiting', { cause }),
      'LockTimeoutError',
      'LOCK_ERR_TIMEOUT',
      'timed out waiting',
    ],
  ] as const;

  it.each(table)('%s', (error, name, code, message) => {
    expect(error).toBeInstanceOf(LockError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    expect(error.cause).toBe(cause);
  });

  it('every class has its own LOCK_ERR_ code', () => {
    const codes = table.map(([error]) => error.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^LOCK_ERR_[A-Z_]+$/);
  });

  it('LeaseLostError carries key, fence and reason', () => {
    const e = new LeaseLostError('expired', 'key', 42);
    expect([e.reason, e.key, e.fence]).toEqual(['expired', 'key', 42]);
    expect(e.message).toContain('could not be renewed before its TTL ran out');
    expect(new LeaseLostError('closed', 'k', 1).message).toContain('the lock was closed');
  });

  it('LockTimeoutError carries the path; config and unavailable errors their reason', () => {
    expect(new LockTimeoutError('/p.lock', 'm').path).toBe('/p.lock');
    expect(new LockConfigError('dependency', 'm').reason).toBe('dependency');
    expect(new LockUnavailableError('io', 'm').reason).toBe('io');
  });
});
