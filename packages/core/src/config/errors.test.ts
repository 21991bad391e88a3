import { describe, expect, it } from 'vitest';
import { TaskCacheError } from '../errors.js';
import { RedisStoreError } from '../redis/store.js';
import { CacheConfigError, CacheRunError } from './errors.js';

// One table for the error classes of the cached run (name, code, instanceof, message, cause).
const cause = new Error('underlying');
describe.each([
  {
    error: new CacheConfigError('CACHE_ERR_INVALID_KEY', 'invalid cache key "x/y"', { cause }),
    name: 'CacheConfigError',
    code: 'CACHE_ERR_INVALID_KEY',
    type: CacheConfigError,
  },
  {
    error: new CacheConfigError('CACHE_ERR_INVALID_URL', 'bad url'),
    name: 'CacheConfigError',
    code: 'CACHE_ERR_INVALID_URL',
    type: CacheConfigError,
  },
  {
    error: new CacheRunError('SAVE_FAILED', 'task "build": save failed', { cause }),
    name: 'CacheRunError',
    code: 'CACHE_ERR_RUN_FAILED',
    type: CacheRunError,
  },
  {
    error: new RedisStoreError('CACHE_ERR_REDIS_OOM', 'refused: out of memory', { cause }),
    name: 'RedisStoreError',
    code: 'CACHE_ERR_REDIS_OOM',
    type: RedisStoreError,
  },
])('$name $code', ({ error, name, code, type }) => {
  it('has its name, literal code, message, base class and cause', () => {
    expect(error).toBeInstanceOf(type);
    expect(error).toBeInstanceOf(TaskCacheError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(error.message.length).toBeGreaterThan(0);
    expect(String(error)).toBe(`${name}: ${error.message}`);
    if (error.cause !== undefined) expect(error.cause).toBe(cause);
  });
});

it('CacheRunError keeps the warning code as reason', () => {
  expect(new CacheRunError('LEASE_LOST', 'm').reason).toBe('LEASE_LOST');
});
