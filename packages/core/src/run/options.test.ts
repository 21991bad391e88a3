import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfigError, InvalidOptionError } from '../errors.js';
import { createMemoryStore } from '../store/memory.js';
import { createCache } from './cache.js';
import type { CacheOptions } from './types.js';

let stateDir: string;
let dir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'tc-options-state-'));
  dir = await mkdtemp(join(tmpdir(), 'tc-options-task-'));
});
afterAll(async () => {
  await rm(stateDir, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

/** The error `fn` throws (or `undefined`). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('createCache validates every option at construction (issue 13)', () => {
  const cases: Array<[string, CacheOptions]> = [
    // Regression: 300 was accepted, then every save failed at run time as a SAVE_FAILED warning
    // because the entry functions allow 1..256.
    ['concurrency', { concurrency: 300 }],
    ['concurrency', { concurrency: 0 }],
    ['concurrency', { concurrency: 1.5 }],
    ['compressionLevel', { compressionLevel: 23 }],
    ['maxEntrySize', { maxEntrySize: -1 }],
    ['lockWaitTimeoutMs', { lockWaitTimeoutMs: Number.NaN }],
    ['circuitBreakerThreshold', { circuitBreakerThreshold: 0 }],
    ['circuitBreakerCooldownMs', { circuitBreakerCooldownMs: -5 }],
    ['readOnly', { readOnly: 'yes' as never }],
    ['strict', { strict: 1 as never }],
    ['shouldSave', { shouldSave: true as never }],
    ['enabled', { enabled: 'false' as never }],
    ['onEvent', { onEvent: 'log' as never }],
    ['stateDir', { stateDir: '' }],
    ['env', { env: 'HOME=/x' as never }],
    ['store', { store: 42 as never }],
    ['store', { store: { fetchManifest: () => undefined } as never }],
    ['lock', { lock: { acquire: () => undefined } as never }],
    // Issue 16: the time budgets and size caps.
    ['timeouts', { timeouts: 5_000 as never }],
    ['timeouts.lookupMs', { timeouts: { lookupMs: 0 } }],
    ['timeouts.requestMs', { timeouts: { requestMs: 1.5 } }],
    ['timeouts.lookupMS', { timeouts: { lookupMS: 10 } as never }],
    ['limits.maxIndexChildren', { limits: { maxIndexChildren: -1 } }],
    ['limits.maxTokenBytes', { limits: { maxTokenBytes: Number.POSITIVE_INFINITY } }],
    ['explain', { explain: 'yes' as never }],
    // Issue 20: the tiers.
    ['tiers', { tiers: 'local:rx' }],
    ['tiers', { tiers: { cloud: 'rw' } as never }],
    ['tiers', { tiers: 3 as never }],
    ['TASK_CACHE_TIERS', { env: { TASK_CACHE_TIERS: 'remote:yes' } }],
    ['readScopes', { readScopes: 'oci://r/x' as never }],
    ['readScopes[1]', { readScopes: ['memory://a', 42] as never }],
    ['readScopes[0]', { readScopes: [''] }],
    ['signingKey', { signingKey: 'not a key' }],
    ['signingKey', { signingKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' }],
    ['trustedKeys', { trustedKeys: 42 as never }],
    ['TASK_CACHE_TRUSTED_KEYS', { env: { TASK_CACHE_TRUSTED_KEYS: '/nonexistent/key.pub' } }],
  ];
  it.each(cases)('%s: %j', (field, options) => {
    const err = thrown(() => createCache({ stateDir, ...options }));
    expect(err).toBeInstanceOf(InvalidOptionError);
    // One class per concept: an invalid option is still a configuration error.
    expect(err).toBeInstanceOf(CacheConfigError);
    expect(err).toMatchObject({ code: 'CACHE_ERR_INVALID_OPTION', field });
    expect((err as Error).message).toContain(field);
  });

  it('accepts timeouts and limits (any subset of the fields)', () => {
    expect(() =>
      createCache({
        stateDir,
        timeouts: {
          lookupMs: 1,
          saveMs: 2,
          restoreMs: 3,
          connectMs: 4,
          headersMs: 5,
          bodyIdleMs: 6,
          requestMs: 7,
        },
        limits: {
          maxIndexChildren: 1,
          maxLayers: 2,
          maxConfigBytes: 3,
          maxManifestBytes: 4,
          maxTokenBytes: 5,
        },
      }),
    ).not.toThrow();
  });

  it('accepts the bounds the entry functions accept', () => {
    expect(() => createCache({ stateDir, concurrency: 256, compressionLevel: 22 })).not.toThrow();
    expect(() =>
      createCache({ stateDir, concurrency: 1, compressionLevel: 1, maxEntrySize: 0 }),
    ).not.toThrow();
  });

  it('a malformed lock or store URL is a typed configuration error naming it; no URIError escapes', () => {
    for (const options of [
      { lock: 'redis://h:6379/lock%E0%A4%A' },
      { lock: 'zk://x' },
      { store: 'oci://registry.example/repo:%E0%A4%A' },
      { store: 'nope://x' },
    ]) {
      const err = thrown(() => createCache({ stateDir, ...options }));
      expect(err, JSON.stringify(options)).toBeInstanceOf(CacheConfigError);
      expect(err).not.toBeInstanceOf(URIError);
      if ('lock' in options) expect((err as Error).message).toMatch(/lock/);
    }
  });

  it('a password in a bad lock URL never reaches the message', () => {
    const err = thrown(() => createCache({ stateDir, lock: 'redis://:hunter2secret@h:6379/k%E0%A4%A' }));
    expect(err).toBeInstanceOf(CacheConfigError);
    expect(String((err as Error).message)).not.toContain('hunter2secret');
  });
});

describe('per-call policy overrides are validated at the entry of the call', () => {
  const run = { task: 't', sources: ['src/**'], generates: ['dist/**'] };
  it.each([
    ['policy.concurrency', { concurrency: 300 }],
    ['policy.compressionLevel', { compressionLevel: 0 }],
    ['policy.shouldRestore', { shouldRestore: 'no' as never }],
  ])('%s', async (field, policy) => {
    const cache = createCache({ store: createMemoryStore(), lock: false, stateDir });
    let built = 0;
    const err = await cache
      .run({ ...run, dir, policy }, () => {
        built++;
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err).toMatchObject({ field });
    expect(built).toBe(0);
    for (const step of ['lookup', 'restore', 'save'] as const) {
      await expect(cache[step]({ ...run, dir, policy })).rejects.toMatchObject({ field });
    }
  });

  it('run() checks generates with the entry functions rule (relative, no "..")', async () => {
    const cache = createCache({ store: createMemoryStore(), lock: false, stateDir });
    await expect(cache.run({ ...run, dir, generates: ['../x/**'] }, () => undefined)).rejects.toMatchObject({
      code: 'CACHE_ERR_INVALID_OPTION',
      field: 'generates',
    });
  });

  it('a closed cache refuses to run', async () => {
    const cache = createCache({ store: createMemoryStore(), lock: false, stateDir });
    await cache.close();
    await expect(cache.run({ ...run, dir }, () => undefined)).rejects.toMatchObject({
      code: 'CACHE_ERR_CLOSED',
    });
  });
});
