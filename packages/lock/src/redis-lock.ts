// NOTE (size): ~500 lines, kept in one file on purpose: the connection sharing (one command and one
// subscriber connection per settings, reference-counted), the release-notice subscriptions and the
// engine backend all close over the one `Shared` record and the module's loaded ioredis; connection
// set-up and diagnosis live in internal/connection.ts and internal/diagnose.ts.
import { readFile } from 'node:fs/promises';
import type { Cluster, Redis } from 'ioredis';
import { LockConfigError } from './errors.js';
import {
  type ConnectionSettings,
  classifyRedisError,
  closeClient,
  clusterOptions,
  connectClient,
  createClient,
  ensureReady,
  type IoredisModule,
  isCluster,
  type LockClient,
  robustOptions,
  settingsIdentity,
  trackSentinelConnections,
  unrefSockets,
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
const io: IoredisModule = { Redis: ioredis.Redis, Cluster: ioredis.Cluster };

/** Options of {@link connectLock} and {@link createRedisLock}. */
export interface RedisLockOptions extends LockOptions {
  /** Connect timeout (TCP + TLS + AUTH + PING); misconfiguration is reported within it. @default 5_000 */
  connectTimeoutMs?: number;
  /** Per-command timeout; no lock call blocks longer on a frozen Redis. @default 2_000 */
  commandTimeoutMs?: number;
  /** PEM CA bundle for the TLS schemes (instead of `?ca=PATH`). @default the system CAs */
  ca?: string | Buffer;
  /**
   * Subscribe waiters to release notices (one shared subscriber connection; sharded pub/sub on a
   * Redis Cluster >= 7). `false`: waiters poll with the backoff alone (e.g. when an ACL user has no
   * channel permissions).
   * @default true
   */
  releaseNotices?: boolean;
  /**
   * Aborts connecting: `connectLock` rejects with `signal.reason` at once and leaves no connection
   * behind. It does not affect the lock once returned (each call takes its own signal).
   * @default undefined
   */
  signal?: AbortSignal;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;
/** The fence counter outlives leases by far; the TIME seed covers its expiry. */
const FENCE_TTL_MS = 24 * 3600_000;
/**
 * Sentinel: how long an acquire or a renewal waits for one replica to have it (`WAIT 1 ms`), so that a
 * failover right after it promotes a replica that knows the lease. Bounded and small: a deployment whose
 * replica is down pays it once per acquire and renewal, never more.
 */
const REPLICA_WAIT_MS = 250;

interface ScriptClient {
  taskCacheLockAcquire(
    lease: string,
    fence: string,
    token: string,
    ttl: number,
    fenceTtl: number,
  ): Promise<[number, string | number]>;
  taskCacheLockRenew(lease: string, token: string, ttl: number): Promise<number>;
  taskCacheLockRelease(
    lease: string,
    token: string,
    outcome: string,
    channel: string,
    publish: string,
  ): Promise<number>;
}

function defineScripts<C extends LockClient>(client: C): C & ScriptClient {
  const c = client as C & ScriptClient;
  if (typeof c.taskCacheLockAcquire !== 'function') {
    client.defineCommand('taskCacheLockAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    client.defineCommand('taskCacheLockRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('taskCacheLockRelease', { numberOfKeys: 1, lua: RELEASE });
  }
  return c;
}

/** One command connection + one subscriber connection, shared by every lock with the same settings. */
interface Shared {
  client: LockClient & ScriptClient;
  owned: boolean;
  settings: ConnectionSettings;
  subscriber: LockClient | undefined;
  /** Cluster: whether the servers have sharded pub/sub (SPUBLISH); asked once, on first need. */
  sharded: Promise<boolean> | undefined;
  /** Channel → its SUBSCRIBE (shared by all waiters on it); cleared when the subscriber connection ends. */
  active: Map<string, Promise<void>>;
  /** Channel → its waiters' listeners; `undefined` tells them notices may have been missed. */
  listeners: Map<string, Set<(outcome: ReleaseOutcome | undefined) => void>>;
  /** Told after every (re)connect of the command connection: held leases are re-validated. */
  reconnected: Set<() => void>;
  /** Aborted by the last close: pending connects and waits end at once. */
  closing: AbortController;
  refs: number;
  identity: string | undefined;
}

const pool = new Map<string, Shared>();

function attachErrorListener(client: LockClient): void {
  // NOTE: without an 'error' listener ioredis errors become uncaught exceptions; failures surface through
  // the commands' promises instead.
  client.on('error', () => {});
}

function newShared(client: LockClient, owned: boolean, settings: ConnectionSettings, refs: number): Shared {
  const shared: Shared = {
    client: defineScripts(client),
    owned,
    settings,
    subscriber: undefined,
    sharded: undefined,
    listeners: new Map(),
    active: new Map(),
    reconnected: new Set(),
    closing: new AbortController(),
    refs,
    identity: undefined,
  };
  // After any reconnect (a restart, a Sentinel failover, a Cluster node coming back) a held lease may be
  // gone: the engine renews every held lease at once, which reports a lease whose token is gone as lost.
  const fire = () => {
    for (const listener of shared.reconnected) listener();
  };
  client.on('ready', fire);
  if (isCluster(client)) client.on('+node', (node: Redis) => node.on('ready', fire));
  return shared;
}

/** Cluster >= 7: sharded pub/sub (the notice goes to the channel's shard only). Otherwise classic. */
function publishCommand(shared: Shared): Promise<'SPUBLISH' | 'PUBLISH'> {
  const client = shared.client;
  if (!isCluster(client)) return Promise.resolve('PUBLISH');
  shared.sharded ??= (client.call('COMMAND', 'INFO', 'SPUBLISH') as Promise<unknown[]>).then(
    (info) => Array.isArray(info) && Array.isArray(info[0]),
  );
  const asked = shared.sharded;
  asked.catch(() => {
    if (shared.sharded === asked) shared.sharded = undefined; // ask again next time
  });
  return asked.then((sharded) => (sharded ? 'SPUBLISH' : 'PUBLISH'));
}

function backendFor(shared: Shared, releaseNotices: boolean): LockBackend {
  const { settings } = shared;
  const deployment = settings.url.deployment;
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      if (shared.owned) await ensureReady(io, shared.client, settings, shared.closing.signal);
      return await withCommandTimeout(fn, settings);
    } catch (error) {
      throw classifyRedisError(error, settings.where);
    }
  };
  /** Sentinel: let one replica catch up (bounded, result ignored: a lone master still serves the lock). */
  const replicate = async () => {
    if (deployment !== 'sentinel') return;
    await (shared.client as Redis).call('WAIT', '1', String(REPLICA_WAIT_MS)).catch(() => undefined);
  };
  return {
    tryAcquire: (key, token, ttlMs) =>
      call(async () => {
        const k = lockKeys(key);
        // A waiter whose subscription ended (a failover, a restart) gets it back on its next attempt.
        if (releaseNotices) resubscribeIfLost(shared, k.channel);
        const [ok, value] = await shared.client.taskCacheLockAcquire(
          k.lease,
          k.fence,
          token,
          ttlMs,
          FENCE_TTL_MS,
        );
        if (ok === 1) {
          await replicate();
          return { ok: true as const, fence: Number(value) };
        }
        const pttl = Number(value);
        return { ok: false as const, pttlMs: Number.isFinite(pttl) && pttl >= 0 ? pttl : undefined };
      }),
    renew: (key, token, ttlMs) =>
      call(async () => {
        const renewed = (await shared.client.taskCacheLockRenew(lockKeys(key).lease, token, ttlMs)) === 1;
        if (renewed) await replicate();
        return renewed;
      }),
    release: (key, token, outcome) =>
      call(async () => {
        const k = lockKeys(key);
        const publish = await publishCommand(shared);
        return (await shared.client.taskCacheLockRelease(k.lease, token, outcome, k.channel, publish)) === 1;
      }),
    ...(releaseNotices
      ? {
          subscribe: (key: string, listener: (outcome: ReleaseOutcome | undefined) => void) =>
            subscribe(shared, lockKeys(key).channel, listener),
        }
      : {}),
    onReconnect: (listener: () => void) => {
      shared.reconnected.add(listener);
      return () => shared.reconnected.delete(listener);
    },
    close: () => releaseShared(shared),
  };
}

function subscriberOf(shared: Shared, sharded: boolean): LockClient {
  if (shared.subscriber) return shared.subscriber;
  const { settings } = shared;
  const client = shared.client;
  const sub: LockClient = isCluster(client)
    ? client.duplicate([], clusterOptions(settings, sharded))
    : trackSentinelConnections(client.duplicate(robustOptions(settings)));
  attachErrorListener(sub);
  unrefSockets(sub);
  sub.on('end', () => shared.active.clear());
  const onMessage = (channel: string, message: string) => {
    if (message !== 'built' && message !== 'failed') return;
    for (const l of shared.listeners.get(channel) ?? []) l(message);
  };
  sub.on('message', onMessage);
  sub.on('smessage', onMessage);
  // ioredis resubscribes by itself after a reconnect within its bounded retries; a notice sent in the gap
  // is lost, so every waiter attempts once more right away.
  let readyBefore = false;
  sub.on('ready', () => {
    if (readyBefore) for (const set of shared.listeners.values()) for (const l of set) l(undefined);
    readyBefore = true;
  });
  shared.subscriber = sub;
  return sub;
}

/** Starts (once per channel) the subscription of `channel`; resolves when it is active. */
function activate(shared: Shared, channel: string): Promise<void> {
  let active = shared.active.get(channel);
  if (active) return active;
  active = publishCommand(shared)
    .catch(() => 'PUBLISH' as const)
    .then(async (publish) => {
      const sub = subscriberOf(shared, publish === 'SPUBLISH');
      // NOTE: after an on-demand reconnect (status 'end' → connect) ioredis does not resubscribe by itself,
      // hence the map is cleared on 'end' and the channel is subscribed again.
      await ensureReady(io, sub, shared.settings, shared.closing.signal);
      await withCommandTimeout(
        () => (publish === 'SPUBLISH' ? sub.ssubscribe(channel) : sub.subscribe(channel)),
        shared.settings,
      );
    });
  shared.active.set(channel, active);
  active.catch(() => {
    if (shared.active.get(channel) === active) shared.active.delete(channel);
  });
  return active;
}

/** A channel with waiters but no active subscription (it ended): subscribe again, then tell the waiters. */
function resubscribeIfLost(shared: Shared, channel: string): void {
  if (!shared.listeners.has(channel) || shared.active.has(channel) || shared.closing.signal.aborted) return;
  activate(shared, channel).then(
    () => {
      for (const l of shared.listeners.get(channel) ?? []) l(undefined);
    },
    () => undefined, // polling goes on; the next attempt tries again
  );
}

async function subscribe(
  shared: Shared,
  channel: string,
  listener: (outcome: ReleaseOutcome | undefined) => void,
): Promise<() => void> {
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
    const sub = shared.subscriber;
    if (sub?.status === 'ready') {
      const off = shared.sharded === undefined ? Promise.resolve(false) : shared.sharded;
      off
        .then((sharded) => (sharded ? sub.sunsubscribe(channel) : sub.unsubscribe(channel)))
        .catch(() => undefined);
    }
  };
  try {
    await activate(shared, channel);
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
  // Ends pending connects and reconnect waits at once: nothing of this lock may keep the process alive.
  shared.closing.abort(new LockConfigError('option', 'lock is closed'));
  shared.listeners.clear();
  shared.reconnected.clear();
  const t = shared.settings.commandTimeoutMs;
  await Promise.all([
    shared.owned ? closeClient(shared.client, t) : Promise.resolve(),
    shared.subscriber ? closeClient(shared.subscriber, t) : Promise.resolve(),
  ]);
}

/** The lock's own close signal, and the caller's when given. */
const withCaller = (own: AbortSignal, caller: AbortSignal | undefined): AbortSignal =>
  caller ? AbortSignal.any([own, caller]) : own;

/**
 * Connects to the lock Redis named by `url` and returns a {@link Lock}; the URL's key is available as
 * `lock.key`. `url` is a string or a parsed {@link RedisLockUrl} of any deployment:
 *
 * - `redis://[USER][:PASSWORD]@HOST[:PORT]/KEY[?db=N]`, `rediss://…[?ca=PATH]` — one server;
 * - `redis+sentinel://[USER][:PASSWORD]@HOST[:PORT][,…]/MASTER_NAME[/KEY]` (`rediss+sentinel://`,
 *   `?sentinel_username=`, `?sentinel_password=`) — the master the sentinels name, followed across
 *   failovers;
 * - `redis+cluster://[USER][:PASSWORD]@HOST[:PORT][,…][/KEY]` (`rediss+cluster://`) — a Redis Cluster; all
 *   keys of one lock share a hash slot, notices use sharded pub/sub where the servers have it.
 *
 * Locks with equal connection settings in one process share one command and one subscriber connection
 * (the key is not part of them). No command is ever queued while disconnected: a lock call fails fast
 * (`unavailable`), and after every reconnect the held leases are re-validated (a lease whose token is gone
 * is lost, never silently kept).
 *
 * Misconfiguration (bad URL or option, NOAUTH, WRONGPASS, NOPERM, TLS to a plaintext port, an unknown
 * master name, a node not in cluster mode) rejects with a {@link LockConfigError} within the connect
 * timeout, leaving no reconnect loop behind. An unreachable Redis does not reject: the lock is returned and
 * its calls report `unavailable`.
 */
export async function connectLock(
  url: string | URL | RedisLockUrl,
  options: RedisLockOptions = {},
): Promise<Lock> {
  options.signal?.throwIfAborted();
  const parsed: LockUrl = typeof url === 'string' || url instanceof URL ? parseLockUrl(url) : url;
  if (parsed?.kind !== 'redis') {
    throw new LockConfigError(
      'url',
      'connectLock needs a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL (for local: use createFileLock or createLocalLock)',
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
    url: parsed,
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
    const client = createClient(io, settings);
    attachErrorListener(client);
    unrefSockets(client);
    shared = newShared(client, true, settings, 0);
    shared.identity = identity;
    pool.set(identity, shared);
    try {
      await connectClient(io, client, settings, withCaller(shared.closing.signal, options.signal));
    } catch (error) {
      pool.delete(identity);
      shared.identity = undefined;
      if (options.signal?.aborted) {
        await closeClient(client, 0);
        throw options.signal.reason;
      }
      // Unreachable is not a configuration problem: hand out the lock, its calls report `unavailable`.
      if (error instanceof LockConfigError) throw error;
    }
  } else if (shared.client.status !== 'ready') {
    try {
      await ensureReady(io, shared.client, settings, withCaller(shared.closing.signal, options.signal));
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
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
 * A {@link Lock} on an ioredis client you own — a `Redis` (standalone or Sentinel) or a `Cluster`. It is
 * never connected, reconnected or closed by the lock; configure its timeouts, give it an `error` listener,
 * and turn its offline queue off (`enableOfflineQueue: false`) so that no lock command waits for a
 * reconnect. The subscriber for release notices is a `duplicate()` (a new `Cluster` for a cluster), owned
 * and closed by the lock.
 */
export function createRedisLock(client: Redis | Cluster, options: RedisLockOptions = {}): Lock {
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
  let url: RedisLockUrl;
  if (isCluster(client)) {
    const startup = (client as unknown as { startupNodes: Array<{ host?: string; port?: number } | number> })
      .startupNodes;
    const nodes = startup.map((n) =>
      typeof n === 'object' && n !== null
        ? { host: String(n.host ?? 'localhost'), port: Number(n.port ?? 6379) }
        : { host: 'localhost', port: Number(n) || 6379 },
    );
    const o = client.options.redisOptions ?? {};
    url = {
      kind: 'redis',
      deployment: 'cluster',
      tls: o.tls !== undefined,
      username: o.username,
      password: o.password,
      caPath: undefined,
      key: undefined,
      nodes,
    };
  } else {
    const o = client.options;
    url = {
      kind: 'redis',
      deployment: 'standalone',
      tls: o.tls !== undefined,
      host: o.host ?? 'localhost',
      port: o.port ?? 6379,
      username: o.username,
      password: o.password,
      db: o.db ?? 0,
      caPath: undefined,
      key: undefined,
    };
  }
  const settings: ConnectionSettings = {
    url,
    ca: undefined,
    connectTimeoutMs,
    commandTimeoutMs,
    where: `${describeLockUrl(url)} (injected client)`,
  };
  const shared = newShared(client, false, settings, 1);
  return createEngineLock(backendFor(shared, options.releaseNotices !== false), options);
}
