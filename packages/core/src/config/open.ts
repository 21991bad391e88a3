import { join } from 'node:path';
import {
  acquireLockFile,
  createFileLock,
  type Lock,
  LockConfigError,
  type LockUrl,
  parseLockUrl,
} from '@task-cache/lock';
import type { OciStore } from '@task-cache/oci';
import { createLayoutStore, createOciBackend } from '@task-cache/oci';
import type { CacheLimits, CacheTimeouts } from '../run/types.js';
import { defaultCacheDir } from '../store/default-dir.js';
import { createMemoryStore, type MemoryStore } from '../store/memory.js';
import { CacheConfigError } from './errors.js';
import { parseStoreUrl, type StoreUrl } from './urls.js';

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /**
   * Environment for `TASK_CACHE_OCI_USER`/`TASK_CACHE_OCI_PASSWORD`/`TASK_CACHE_OCI_CA`, the
   * docker/podman config files and the default cache directory.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * Registry time budgets (`connectMs`, `headersMs`, `bodyIdleMs`, `requestMs`).
   * @default TIMEOUT_DEFAULTS
   */
  timeouts?: Pick<CacheTimeouts, 'connectMs' | 'headersMs' | 'bodyIdleMs' | 'requestMs'>;
  /**
   * Registry caps (`maxManifestBytes`, `maxTokenBytes`, `maxErrorBodyBytes`, `maxTagPages`).
   * @default the registry client's
   */
  limits?: Pick<CacheLimits, 'maxManifestBytes' | 'maxTokenBytes' | 'maxErrorBodyBytes' | 'maxTagPages'>;
  signal?: AbortSignal;
}

// NOTE: the one piece of module-level state in core, on purpose: `memory://NAME` is documented as
// "an in-process store shared by name", so two caches (or a cache and a test) configured with the
// same URL see the same entries. Use `createMemoryStore()` for a store of your own.
const memoryStores = new Map<string, MemoryStore>();

/**
 * The in-process store behind `memory://NAME` (created on first use). Process-wide by design:
 * every `memory://NAME` URL and every call with the same `name` get the same store, with the
 * entries earlier users left in it (tests that must not share entries use distinct names or
 * `createMemoryStore()`).
 */
export function namedMemoryStore(name: string): MemoryStore {
  let store = memoryStores.get(name);
  if (!store) {
    store = createMemoryStore({ name });
    memoryStores.set(name, store);
  }
  return store;
}

/** The embedded default store's directory: `defaultCacheDir(env)`, an OCI image layout. */
export function defaultStoreDir(env: Record<string, string | undefined> = process.env): string {
  return defaultCacheDir(env);
}

/**
 * Opens the store a URL names (see {@link parseStoreUrl}). Registry credentials come from the
 * environment or docker/podman `config.json`, the CA from `?ca=` or `TASK_CACHE_OCI_CA`; the
 * Redis store is loaded (with ioredis) only when a `redis://` URL is used.
 * @returns the store and the URL's tag (the cache key), if any.
 */
export async function openStore(
  url: string | StoreUrl,
  options: OpenStoreOptions = {},
): Promise<{ store: OciStore; tag?: string }> {
  const parsed = typeof url === 'string' ? parseStoreUrl(url) : url;
  const env = options.env ?? process.env;
  options.signal?.throwIfAborted();
  switch (parsed.kind) {
    case 'default':
      return { store: createLayoutStore(defaultStoreDir(env), { locker: acquireLockFile }) };
    case 'oci-layout': {
      // NOTE: several processes (parallel tasks, CI jobs on one runner) share a layout: its
      // index.json updates take @task-cache/lock's cross-process lock file.
      const store = createLayoutStore(parsed.path, { locker: acquireLockFile });
      return parsed.tag === undefined ? { store } : { store, tag: parsed.tag };
    }
    case 'memory': {
      const store = namedMemoryStore(parsed.name);
      return parsed.tag === undefined ? { store } : { store, tag: parsed.tag };
    }
    case 'redis': {
      let mod: typeof import('../redis.js');
      try {
        mod = await import('../redis.js');
      } catch (cause) {
        throw new CacheConfigError(
          'CACHE_ERR_MISSING_DEPENDENCY',
          'redis:// and rediss:// store URLs need the optional peer dependency ioredis: install it (npm i ioredis)',
          { cause },
        );
      }
      const { createRedisStore } = mod;
      const store = createRedisStore(
        parsed.ttlSeconds === undefined
          ? { url: parsed.url }
          : { url: parsed.url, ttlSeconds: parsed.ttlSeconds },
      );
      return { store };
    }
    case 'oci': {
      const store = await openRegistryStore(parsed, env, options);
      return parsed.tag === undefined ? { store } : { store, tag: parsed.tag };
    }
  }
}

async function openRegistryStore(
  parsed: Extract<StoreUrl, { kind: 'oci' }>,
  env: Record<string, string | undefined>,
  options: OpenStoreOptions,
): Promise<OciStore> {
  const t = options.timeouts ?? {};
  const l = options.limits ?? {};
  const ca = parsed.ca ?? (env.TASK_CACHE_OCI_CA || undefined);
  // NOTE: a cache must cost seconds, not minutes, when the registry is down: fewer and shorter
  // retries than the client's defaults (the run's circuit breaker does the rest).
  return createOciBackend({
    url: `oci://${parsed.registry}/${parsed.repository}`,
    plainHttp: parsed.plainHttp,
    ...(ca === undefined ? {} : { ca }),
    ...(parsed.maxBlobPushesPerMinute === undefined
      ? {}
      : { maxBlobPushesPerMinute: parsed.maxBlobPushesPerMinute }),
    env,
    retries: 2,
    maxRetryDelayMs: 2_000,
    maxRetryAfterMs: 10_000,
    connectTimeoutMs: t.connectMs ?? 5_000,
    headersTimeoutMs: t.headersMs ?? 10_000,
    bodyTimeoutMs: t.bodyIdleMs ?? 10_000,
    requestTimeoutMs: t.requestMs ?? 30_000,
    ...(l.maxManifestBytes === undefined ? {} : { maxManifestBytes: l.maxManifestBytes }),
    ...(l.maxTokenBytes === undefined ? {} : { maxTokenBytes: l.maxTokenBytes }),
    ...(l.maxErrorBodyBytes === undefined ? {} : { maxErrorBodyBytes: l.maxErrorBodyBytes }),
    ...(l.maxTagPages === undefined ? {} : { maxTagPages: l.maxTagPages }),
  });
}

/** Options of {@link openLock}. */
export interface OpenLockOptions {
  /** Environment for the default cache directory (local lock files). @default process.env */
  env?: Record<string, string | undefined>;
  /**
   * Directory whose `locks/` holds the local lock files (`createCache()` passes its `stateDir`).
   * @default defaultCacheDir(env)
   */
  stateDir?: string;
}

/**
 * Opens the lock a URL names (see {@link parseLockUrl}): the local lock-file lock in
 * `<stateDir>/locks` (`stateDir` defaults to `defaultCacheDir(env)`; ioredis is not loaded), or the
 * Redis lease lock of `@task-cache/lock/redis`, imported only for a Redis URL — one server
 * (`redis://`, `rediss://`), Sentinel (`redis+sentinel://`, `rediss+sentinel://`) or Cluster
 * (`redis+cluster://`, `rediss+cluster://`).
 * @returns the lock and the URL's lock key, if any.
 * @throws {CacheConfigError} `CACHE_ERR_MISSING_DEPENDENCY` for a Redis URL when ioredis is not installed.
 * @throws {LockConfigError} for a malformed URL or a misconfigured Redis (auth, TLS, permissions).
 */
export async function openLock(
  url: string | LockUrl,
  options: OpenLockOptions = {},
): Promise<{ lock: Lock; key?: string }> {
  const parsed = typeof url === 'string' ? parseLockUrl(url) : url;
  if (parsed.kind === 'local') {
    const stateDir = options.stateDir ?? defaultCacheDir(options.env ?? process.env);
    return { lock: createFileLock(join(stateDir, 'locks')) };
  }
  let redis: typeof import('@task-cache/lock/redis');
  try {
    redis = await import('@task-cache/lock/redis');
  } catch (cause) {
    if (cause instanceof LockConfigError && cause.reason === 'dependency') {
      throw new CacheConfigError('CACHE_ERR_MISSING_DEPENDENCY', cause.message, { cause });
    }
    throw cause;
  }
  // NOTE: the connection is shared per server within the process whatever the key; the key travels
  // separately so that a run's own lock key can override it.
  const lock = await redis.connectLock(parsed);
  return parsed.key === undefined ? { lock } : { lock, key: parsed.key };
}
