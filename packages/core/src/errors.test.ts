import { describe, expect, it } from 'vitest';
import {
  CacheConfigError,
  CacheRunError,
  CacheTimeoutError,
  EntryCorruptError,
  EntryError,
  EntryOutputsError,
  EntryRefusedError,
  EntryTooLargeError,
  InvalidOptionError,
  TaskCacheError,
} from './errors.js';

describe('core errors', () => {
  const cause = new Error('root');
  const table: Array<[TaskCacheError, string, string, string, boolean]> = [
    [
      new TaskCacheError('X_CODE', 'base message', { cause }),
      'TaskCacheError',
      'X_CODE',
      'base message',
      false,
    ],
    [
      new CacheConfigError('CACHE_ERR_INVALID_KEY', 'invalid cache key', { cause }),
      'CacheConfigError',
      'CACHE_ERR_INVALID_KEY',
      'invalid cache key',
      false,
    ],
    [
      new CacheConfigError('CACHE_ERR_CLOSED', 'run: the cache is closed', { cause }),
      'CacheConfigError',
      'CACHE_ERR_CLOSED',
      'run: the cache is closed',
      false,
    ],
    [
      new CacheRunError('LEASE_LOST', 'task "t": lease lost', { cause }),
      'CacheRunError',
      'CACHE_ERR_RUN_FAILED',
      'task "t": lease lost',
      false,
    ],
    [
      new InvalidOptionError('tag', 'bad', { cause }),
      'InvalidOptionError',
      'CACHE_ERR_INVALID_OPTION',
      'invalid option "tag": bad',
      false,
    ],
    [
      new EntryRefusedError('refused', { cause, path: 'a' }),
      'EntryRefusedError',
      'CACHE_ERR_ENTRY_REFUSED',
      'refused',
      true,
    ],
    [
      new EntryCorruptError('corrupt', { cause, digest: 'sha256:x' }),
      'EntryCorruptError',
      'CACHE_ERR_ENTRY_CORRUPT',
      'corrupt',
      true,
    ],
    [
      new EntryTooLargeError('big', { cause, limit: 1, size: 2 }),
      'EntryTooLargeError',
      'CACHE_ERR_ENTRY_TOO_LARGE',
      'big',
      true,
    ],
    [
      new CacheTimeoutError('lookup took longer than its budget of 10 ms', { cause, timeoutMs: 10 }),
      'CacheTimeoutError',
      'CACHE_ERR_TIMEOUT',
      'lookup took longer than its budget of 10 ms',
      false,
    ],
    [
      new EntryOutputsError('outputs', { cause }),
      'EntryOutputsError',
      'CACHE_ERR_ENTRY_OUTPUTS',
      'outputs',
      true,
    ],
  ];
  it.each(table)('%s', (err, name, code, message, isEntry) => {
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(TaskCacheError);
    expect(err instanceof EntryError).toBe(isEntry);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
    expect(err.cause).toBe(cause);
  });
  it('keeps structured fields', () => {
    const e = new EntryTooLargeError('big', { limit: 1, size: 2, path: 'p', digest: 'd' });
    expect([e.limit, e.size, e.path, e.digest]).toEqual([1, 2, 'p', 'd']);
    expect(new InvalidOptionError('dir', 'x').field).toBe('dir');
  });
  it('InvalidOptionError is the one class of INVALID_OPTION, and a configuration error', () => {
    const e = new InvalidOptionError('concurrency', 'must be an integer from 1 to 256, got 300');
    expect(e).toBeInstanceOf(CacheConfigError);
    expect(e.code).toBe('CACHE_ERR_INVALID_OPTION');
    expect(new CacheRunError('LEASE_LOST', 'm').reason).toBe('LEASE_LOST');
    expect(new CacheTimeoutError('m', { timeoutMs: 5 }).timeoutMs).toBe(5);
  });
});
