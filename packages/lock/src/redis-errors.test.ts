import { describe, expect, it } from 'vitest';
import { classifyRedisFailure, isTlsFailure, redisReplyCode } from './redis-errors.js';

/** An error reply as ioredis hands it out: a `ReplyError` whose message is the RESP error text. */
const reply = (text: string, command?: string) => {
  const error = new Error(text) as Error & { command?: { name: string; args: unknown[] } };
  error.name = 'ReplyError';
  if (command) error.command = { name: command, args: ['secret'] };
  return error;
};
const coded = (code: string, message = 'socket trouble') => Object.assign(new Error(message), { code });

describe('redisReplyCode', () => {
  it('is the first word of an error reply', () => {
    expect(redisReplyCode(reply("OOM command not allowed when used memory > 'maxmemory'."))).toBe('OOM');
    expect(redisReplyCode(reply('WRONGPASS invalid username-password pair'))).toBe('WRONGPASS');
    expect(redisReplyCode(reply('ERR'))).toBe('ERR');
  });
  it('is undefined for anything but a reply error', () => {
    expect(redisReplyCode(new Error('OOM command not allowed'))).toBeUndefined();
    expect(redisReplyCode(reply('lowercase words are no code'))).toBeUndefined();
    expect(redisReplyCode('OOM')).toBeUndefined();
    expect(redisReplyCode(undefined)).toBeUndefined();
  });
});

describe('classifyRedisFailure', () => {
  it.each([
    [reply('NOAUTH Authentication required.'), 'auth'],
    [reply('WRONGPASS invalid username-password pair or user is disabled.'), 'auth'],
    // Redis < 6 answers a wrong password with a plain ERR: what counts is that AUTH failed.
    [reply('ERR invalid password', 'auth'), 'auth'],
    [reply('NOPERM this user has no permissions to access one of the keys', 'evalsha'), 'permission'],
    [reply("OOM command not allowed when used memory > 'maxmemory'.", 'evalsha'), 'oom'],
    [reply("READONLY You can't write against a read only replica."), 'readonly'],
    [reply('ERR DB index is out of range', 'select'), 'database'],
    [reply('ERR unknown command', 'evalsha'), 'connection'],
    [reply('LOADING Redis is loading the dataset in memory'), 'connection'],
    [coded('ETIMEDOUT'), 'timeout'],
    [coded('ERR_SSL_WRONG_VERSION_NUMBER'), 'tls'],
    [coded('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls'],
    [coded('ERR_TLS_CERT_ALTNAME_INVALID'), 'tls'],
    [coded('ECONNREFUSED'), 'connection'],
    [new Error('Connection is closed.'), 'connection'],
    [undefined, 'connection'],
  ] as const)('%s → %s', (error, kind) => {
    expect(classifyRedisFailure(error)).toBe(kind);
  });

  // Regression (issue 13): OOM was detected by /\bOOM\b/ on any message, so a build error mentioning
  // "OOM" (or a host name containing it) was reported as STORE_OUT_OF_MEMORY.
  it('never decides by message text', () => {
    expect(classifyRedisFailure(new Error('OOM command not allowed'))).toBe('connection');
    expect(classifyRedisFailure(new Error('certificate has expired (TLS)'))).toBe('connection');
    expect(classifyRedisFailure(new Error('Command timed out'))).toBe('connection');
    expect(classifyRedisFailure(reply('ERR the OOM killer ran'))).toBe('connection');
    expect(isTlsFailure(new Error('SSL routines'))).toBe(false);
  });
});
