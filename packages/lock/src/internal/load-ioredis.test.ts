import { describe, expect, it } from 'vitest';
import { LockConfigError } from '../errors.js';
import { loadIoredis } from './load-ioredis.js';

describe('loadIoredis', () => {
  it('hands out the module', async () => {
    const mod = { Redis: class {} };
    expect(await loadIoredis(async () => mod)).toBe(mod);
  });

  it('a missing ioredis is a LockConfigError naming the fix, never a raw ERR_MODULE_NOT_FOUND', async () => {
    const notFound = Object.assign(new Error("Cannot find package 'ioredis'"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    const error = await loadIoredis(() => Promise.reject(notFound)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockConfigError);
    expect(error).toMatchObject({ code: 'LOCK_ERR_CONFIG', reason: 'dependency', cause: notFound });
    expect((error as Error).message).toContain('not installed: npm i ioredis');
  });

  it('a broken ioredis is a LockConfigError too', async () => {
    const broken = new SyntaxError('Unexpected token');
    const error = await loadIoredis(() => Promise.reject(broken)).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'dependency', cause: broken });
    expect((error as Error).message).toContain('could not load ioredis; reinstall it: npm i ioredis');
  });

  it('the real ioredis loads (it is installed here as a devDependency)', async () => {
    const mod = await loadIoredis(() => import('ioredis'));
    expect(typeof mod.Redis).toBe('function');
  });
});
