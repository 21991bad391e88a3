// Issue 18: the lock on a standalone Redis over TLS (private CA, TLS-only port) as an ACL user limited to
// the documented rule. The shared fault suite runs here; then what can be wrong with such a URL.
import { readFileSync } from 'node:fs';
import { type RedisFixture, startRedis } from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_ACL_RULES, LOCK_USER } from './acl.js';
import { defineFaultSuite, sumCommandCalls } from './fault-suite.js';
import { misconfigReport } from './helpers.js';

let redis: RedisFixture;
let plain: RedisFixture;
beforeAll(async () => {
  [redis, plain] = await Promise.all([
    startRedis({
      tls: true,
      maxmemory: '64mb',
      users: [
        { ...LOCK_USER, rules: LOCK_ACL_RULES },
        // The same keys, but no scripting: what a provider that forbids EVAL looks like.
        {
          name: 'noscript',
          password: 'NoScript-Secret-5',
          rules: LOCK_ACL_RULES.replace(' +evalsha +eval', ''),
        },
      ],
    }),
    startRedis(),
  ]);
});
afterAll(async () => {
  await Promise.all([redis?.stop(), plain?.stop()]);
});

defineFaultSuite('standalone, TLS with a private CA, ACL user', async () => ({
  url: (key) => redis.url(key ?? '', LOCK_USER),
  command: (_key, ...args) => redis.command(...args),
  restartServerOf: async () => {
    await redis.kill();
    await redis.restart();
  },
  forceOom: () => redis.forceOom(),
  clearOom: () => redis.clearOom(),
  commandCalls: (command) => sumCommandCalls([redis], command),
  stop: async () => {},
}));

describe('TLS + ACL: misconfiguration is a typed error naming the problem, without a password', () => {
  it('docs/server-setup.md documents the ACL rule this suite runs with', () => {
    const doc = readFileSync(new URL('../../../docs/server-setup.md', import.meta.url), 'utf8');
    expect(doc).toContain(LOCK_ACL_RULES);
  });

  it('a wrong ACL user password → auth', async () => {
    const url = redis.url('k', { name: LOCK_USER.name, password: 'Wrong-Acl-Secret-3' });
    const r = await misconfigReport(url, ['Wrong-Acl-Secret-3', redis.password!]);
    expect(r).toMatchObject({ ok: false, isLockError: true, code: 'LOCK_ERR_CONFIG', reason: 'auth' });
    expect(r.message).toContain('WRONGPASS');
  });

  it('an unknown ACL user → auth', async () => {
    const url = redis.url('k', { name: 'nobody', password: 'Nobody-Secret-4' });
    const r = await misconfigReport(url, ['Nobody-Secret-4']);
    expect(r).toMatchObject({ ok: false, code: 'LOCK_ERR_CONFIG', reason: 'auth' });
  });

  it('a user who may not run scripts → permission, naming the scripting limit', async () => {
    const url = redis.url('k', { name: 'noscript', password: 'NoScript-Secret-5' });
    const r = await misconfigReport(url, ['NoScript-Secret-5'], { key: 'lock:k' });
    expect(r).toMatchObject({ ok: false, code: 'LOCK_ERR_CONFIG', reason: 'permission' });
    expect(r.message).toContain('Lua scripts (EVALSHA, EVAL)');
  });

  it('the CA missing (system CAs only) → tls', async () => {
    const url = redis.url('k', LOCK_USER).replace(/\?ca=.*$/, '');
    const r = await misconfigReport(url, [LOCK_USER.password]);
    expect(r).toMatchObject({ ok: false, code: 'LOCK_ERR_CONFIG', reason: 'tls' });
  });

  it('rediss:// to a plaintext port → tls, naming the plaintext answer', async () => {
    const url = `${plain.url('k').replace('redis://', 'rediss://')}?ca=${encodeURIComponent(redis.caFile!)}`;
    const r = await misconfigReport(url, [plain.password!]);
    expect(r).toMatchObject({ ok: false, code: 'LOCK_ERR_CONFIG', reason: 'tls' });
    expect(r.message).toContain('answers in plaintext');
  });
});
