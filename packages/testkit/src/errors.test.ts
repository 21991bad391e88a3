import { describe, expect, it } from 'vitest';
import { RedisReplyError, TestkitError } from './errors.js';

describe('error classes', () => {
  const cause = new Error('root cause');
  it.each([
    {
      error: new TestkitError('TESTKIT_ERR_MISSING_TOOLS', 'need redis-server', { cause }),
      name: 'TestkitError',
      code: 'TESTKIT_ERR_MISSING_TOOLS',
      message: 'need redis-server',
      cls: TestkitError,
    },
    {
      error: new TestkitError('TESTKIT_ERR_INVALID_OPTION', 'startRedis: options.password must not be empty'),
      name: 'TestkitError',
      code: 'TESTKIT_ERR_INVALID_OPTION',
      message: 'startRedis: options.password must not be empty',
      cls: TestkitError,
    },
    {
      error: new RedisReplyError('WRONGPASS invalid username-password pair or user is disabled.', { cause }),
      name: 'RedisReplyError',
      code: 'TESTKIT_ERR_REDIS_REPLY',
      message: 'WRONGPASS invalid username-password pair or user is disabled.',
      cls: RedisReplyError,
    },
  ])('$name $code', ({ error, name, code, message, cls }) => {
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(cls);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(error.message).toBe(message);
    if (error.cause !== undefined) expect(error.cause).toBe(cause);
  });

  it('RedisReplyError exposes the reply prefix', () => {
    expect(new RedisReplyError('OOM command not allowed').prefix).toBe('OOM');
    expect(new RedisReplyError('NOAUTH Authentication required.').prefix).toBe('NOAUTH');
  });
});
