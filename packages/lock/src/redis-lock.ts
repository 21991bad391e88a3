import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { LockConfigError } from './errors.js';
import {
  type ConnectionSettings,
  classifyRedisError,
  clientOptions,
  closeClient,
  connectClient,
  ensureReady,
  robustOptions,
  settingsIdentity,
  withCommandTimeout,
} from './internal/connection.js';
import { createEngineLock, type LockBackend, positiveInt } from './internal/engine.js';
import { loadIoredis } from './internal/load-ioredis.js';
import { ACQUIRE, lockKeys, RELEASE, RENEW } from './internal/scripts.js';
import type { Lock, LockOptions, ReleaseOutcome } from './types.js';
import { describeLockUrl, type LockUrl, parseLockUrl, type RedisLockUrl } from './url.js';

// NOTE: ioredis is an optional peer dependency, loaded here and only here: importing this module (the
// `@task-cache/lock/redis` subpath) without it installed fails with a typed LockConfigError naming the
// fix, never a raw ERR_MODULE_NOT_FOUND; the main entry never gets here.
const ioredis = await loadIoredis(() => import('ioredis'));

/** Options of {@link connectLock} and {@link createRedisLock}. */
export interface RedisLockOptions extends LockOptions {
  /** Connect timeout (TCP + TLS + AUTH + PING); misconfiguration is reported within it. @default 5_000 */
  connectTimeoutMs?: number;
  /** Per-command timeout; no lock call blocks longer on a frozen Redis. @default 2_000 */
  commandTimeoutMs?: number;
  /** PEM CA bundle for `rediss://` (instead of `?ca=PATH`). @default the system CAs */
  ca?: string | Buffer;
  /**
   * Subscribe waiters to release notices (one shared subscriber connection). `false`: waiters poll with
   * the backoff alone (e.g. when an ACL user has no channel permissions).
   * @default true
   */
  releaseNotices?: boolean;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;
/** The fence counter outlives leases by far; the TIME seed covers its expiry. */
const FENCE_TTL_MS = 24 * 3600_000;

interface ScriptClient extends Redis {
  taskCacheLockAcquire(
    lease: string,
    fence: string,
    token: string,
    ttl: number,
    fenceTtl: number,
  ): Promise<[number, string | number]>;
  taskCacheLockRenew(lease: string, token: string, ttl: number): Promise<number>;
  taskCacheLockRelease(lease: string, token: string, outcome: string, channel: string): Promise<number>;
}

function defineScripts(client: Redis): ScriptClient {
  const c = client as ScriptClient;
  if (typeof c.taskCacheLockAcquire !== 'function') {
    client.defineCommand('taskCacheLockAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    client.defineCommand('taskCacheLockRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('taskCacheLockRelease', { numberOfKeys: 1, lua: RELEASE });
  }
  return c;
}

/** One command connection + one subscriber connection, shared by every lock with the same settings. */
interface Shared {
  client: ScriptClient;
  owned: boolean;
  settings: ConnectionSettings;
  subscriber: Redis | undefined;
  /** Channel → its SUBSCRIBE (shared by all waiters on it); cleared when the subscriber connection ends. */
  active: Map<string, Promise<void>>;
  listeners: Map<string, Set<(outcome: ReleaseOutcome) => void>>;
  refs: number;
  identity: string | undefined;
}

const pool = new Map<string, Shared>();

function attachErrorListener(client: Redis): void {
  // NOTE: without an 'error' listener ioredis errors become uncaught exceptions; failures surface through
  // the commands' promises instead.
  client.on('error', () => {});
}

/**
 * An idle lock connection must not keep the process alive (a CLI that forgets `close()` still exits).
 * In-flight commands are unaffected: ioredis' command timeout timer keeps the loop alive meanwhile.
 */
function unrefSockets(client: Redis): void {
  client.on('connect', () => {
    (client as unknown as { stream?: { unref?: () => void } }).stream?.unref?.();
  });
}

function backendFor(shared: Shared, releaseNotices: boolean): LockBackend {
  const { settings } = shared;
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      if (shared.owned) await ensureReady(shared.client, settings);
      return await withCommandTimeout(fn, settings);
    } catch (error) {
      throw classifyRedisError(error, settings.where);
    }
  };
  return {
    tryAcquire: (key, token, ttlMs) =>
      call(async () => {
        const k = lockKeys(key);
        const [ok, value] = await shared.client.taskCacheLockAcquire(
          k.lease,
          k.fence,
          token,
          ttlMs,
          FENCE_TTL_MS,
        );
        if (ok === 1) return { ok: true as const, fence: Number(value) };
        const pttl = Number(value);
        return { ok: false as const, pttlMs: Number.isFinite(pttl) && pttl >= 0 ? pttl : undefined };
      }),
    renew: (key, token, ttlMs) =>
      call(async () => (await shared.client.taskCacheLockRenew(lockKeys(key).lease, token, ttlMs)) === 1),
    release: (key, token, outcome) =>
      call(async () => {
        const k = lockKeys(key);
        return (await shared.client.taskCacheLockRelease(k.lease, token, outcome, k.channel)) === 1;
      }),
    ...(releaseNotices
      ? {
          subscribe: (key: string, listener: (outcome: ReleaseOutcome) => void) =>
            subscribe(shared, lockKeys(key).channel, listener),
        }
      : {}),
    close: () => releaseShared(shared),
  };
}

async function subscribe(
  shared: Shared,
  channel: string,
  listener: (outcome: ReleaseOutcome) => void,
): Promise<() => void> {
  if (!shared.subscriber) {
    const sub = shared.client.duplicate(robustOptions(shared.settings));
    attachErrorListener(sub);
    unrefSockets(sub);
    sub.on('end', () => shared.active.clear());
    sub.on('message', (ch: string, message: string) => {
      if (message !== 'built' && message !== 'failed') return;
      for (const l of shared.listeners.get(ch) ?? []) l(message);
    });
    shared.subscriber = sub;
  }
  const sub = shared.subscriber;
  let set = shared.listeners.get(channel);
  if (!set) {
    set = new Set();
    shared.listeners.set(channel, set);
  }
  set.add(listener);
  const unsubscribe = () => {
    const current = shared.listeners.get(channel);
    if (!current?.delete(listener) || current.size > 0) return;
    shared.listeners.delete(channel);
    shared.active.delete(channel);
    if (sub.status === 'ready') sub.unsubscribe(channel).catch(() => undefined);
  };
  let active = shared.active.get(channel);
  if (!active) {
    // NOTE: after an on-demand reconnect (status 'end' → connect) ioredis does not resubscribe by itself,
    // hence the map is cleared on 'end' and the next waiter subscribes again.
    active = ensureReady(sub, shared.settings).then(async () => {
      await sub.subscribe(channel);
    });
    shared.active.set(channel, active);
    active.catch(() => {
      if (shared.active.get(channel) === active) shared.active.delete(channel);
    });
  }
  try {
    await active;
  } catch (error) {
    unsubscribe();
    throw error;
  }
  return unsubscribe;
}

async function releaseShared(shared: Shared): Promise<void> {
  shared.refs--;
  if (shared.refs > 0) return;
  if (shared.identity !== undefined) pool.delete(shared.identity);
  const t = shared.settings.commandTimeoutMs;
  await Promise.all([
    shared.owned ? closeClient(shared.client, t) : Promise.resolve(),
    shared.subscriber ? closeClient(shared.subscriber, t) : Promise.resolve(),
  ]);
}

/**
 * Connects to the lock Redis named by `url` — `redis://[USER][:PASSWORD]@HOST[:PORT]/KEY[?db=N]` or
 * `rediss://…[?ca=PATH]`, as a string or as parsed by {@link parseLockUrl} — and returns a {@link Lock};
 * the URL's path is available as `lock.key`. Locks with equal connection settings in one process share
 * one command and one subscriber connection (the key is not part of them).
 *
 * Misconfiguration (bad URL or option, NOAUTH, WRONGPASS, NOPERM, `rediss://` to a plaintext port) rejects
 * with a {@link LockConfigError} within the connect timeout, leaving no reconnect loop behind. An
 * unreachable Redis does not reject: the lock is returned and its calls report `unavailable`.
 */
export async function connectLock(
  url: string | URL | RedisLockUrl,
  options: RedisLockOptions = {},
): Promise<Lock> {
  const parsed: LockUrl = typeof url === 'string' || url instanceof URL ? parseLockUrl(url) : url;
  if (parsed?.kind !== 'redis') {
    throw new LockConfigError(
      'url',
      'connectLock needs a redis:// or rediss:// URL (for local: use createFileLock or createLocalLock)',
    );
  }
  const connectTimeoutMs = positiveInt(
    options.connectTimeoutMs,
    'connectTimeoutMs',
    DEFAULT_CONNECT_TIMEOUT_MS,
  );
  const commandTimeoutMs = positiveInt(
    options.commandTimeoutMs,
    'commandTimeoutMs',
    DEFAULT_COMMAND_TIMEOUT_MS,
  );
  let ca = options.ca;
  if (ca === undefined && parsed.caPath !== undefined) {
    try {
      ca = await readFile(parsed.caPath);
    } catch (cause) {
      throw new LockConfigError('url', `cannot read the CA file given by ?ca= (${parsed.caPath})`, { cause });
    }
  }
  const settings: ConnectionSettings = {
    host: parsed.host,
    port: parsed.port,
    username: parsed.username,
    password: parsed.password,
    db: parsed.db,
    tls: parsed.tls,
    ca,
    connectTimeoutMs,
    commandTimeoutMs,
    where: describeLockUrl(parsed),
  };
  // Validate the lock options before any socket is opened.
  createEngineLock({} as LockBackend, options);
  const identity = settingsIdentity(settings);
  let shared = pool.get(identity);
  if (!shared) {
    const client = defineScripts(new ioredis.Redis(clientOptions(settings)));
    attachErrorListener(client);
    unrefSockets(client);
    shared = {
      client,
      owned: true,
      settings,
      subscriber: undefined,
      listeners: new Map(),
      active: new Map(),
      refs: 0,
      identity,
    };
    pool.set(identity, shared);
    try {
      await connectClient(client, settings);
    } catch (error) {
      pool.delete(identity);
      shared.identity = undefined;
      // Unreachable is not a configuration problem: hand out the lock, its calls report `unavailable`.
      if (error instanceof LockConfigError) throw error;
    }
  } else if (shared.client.status !== 'ready') {
    try {
      await ensureReady(shared.client, settings);
    } catch (error) {
      if (error instanceof LockConfigError) throw error;
    }
  }
  shared.refs++;
  return createEngineLock(backendFor(shared, options.releaseNotices !== false), {
    ...options,
    key: parsed.key,
  });
}

/**
 * A {@link Lock} on an ioredis client you own (it is never connected, reconnected or closed by the lock;
 * configure its timeouts and give it an `error` listener). The subscriber for release notices is a
 * `duplicate()` of it, owned and closed by the lock.
 */
export function createRedisLock(client: Redis, options: RedisLockOptions = {}): Lock {
  const commandTimeoutMs = positiveInt(
    options.commandTimeoutMs,
    'commandTimeoutMs',
    DEFAULT_COMMAND_TIMEOUT_MS,
  );
  const connectTimeoutMs = positiveInt(
    options.connectTimeoutMs,
    'connectTimeoutMs',
    DEFAULT_CONNECT_TIMEOUT_MS,
  );
  const o = client.options;
  const settings: ConnectionSettings = {
    host: o.host ?? 'localhost',
    port: o.port ?? 6379,
    username: o.username,
    password: o.password,
    db: o.db ?? 0,
    tls: o.tls !== undefined,
    ca: undefined,
    connectTimeoutMs,
    commandTimeoutMs,
    where: `redis://${o.host ?? 'localhost'}:${o.port ?? 6379} (injected client)`,
  };
  const shared: Shared = {
    client: defineScripts(client),
    owned: false,
    settings,
    subscriber: undefined,
    listeners: new Map(),
    active: new Map(),
    refs: 1,
    identity: undefined,
  };
  return createEngineLock(backendFor(shared, options.releaseNotices !== false), options);
}
