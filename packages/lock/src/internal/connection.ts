// NOTE (size): ~420 lines: connection options, creation, readiness and closing for the four Redis
// deployments (standalone, TLS, Sentinel, Cluster); diagnosis of a failed connect is in diagnose.ts.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { LockConfigError, LockError, LockUnavailableError } from '../errors.js';
import { classifyRedisFailure, isTlsFailure, redisReplyCode } from '../redis-errors.js';
import type { RedisLockUrl } from '../url.js';
import { diagnose } from './diagnose.js';

/** What the lock needs of the ioredis module (the subpath loads it once; tests pass the same). */
export interface IoredisModule {
  Redis: typeof Redis;
  Cluster: typeof Cluster;
}

/** A command or subscriber connection of any deployment. */
export type LockClient = Redis | Cluster;

/**
 * ioredis attaches the failed command to a reply error (`command: { name: 'auth', args: [PASSWORD] }`):
 * never keep that as a `cause`. Returns a copy with name, message, code and stack only.
 */
export function scrubError(error: unknown): unknown {
  if (!(error instanceof Error) || !('command' in error)) return error;
  const copy = new Error(error.message);
  copy.name = error.name;
  copy.stack = error.stack;
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) Object.assign(copy, { code });
  return copy;
}

/**
 * Maps an ioredis / socket error to the lock's typed errors, by {@link classifyRedisFailure} (reply codes,
 * the command answered, socket codes). `where` must not contain secrets.
 */
export function classifyRedisError(raw: unknown, where: string): LockError {
  if (raw instanceof LockError) return raw;
  const kind = classifyRedisFailure(raw);
  const error = scrubError(raw);
  const message = error instanceof Error ? error.message : String(error);
  const text = `${where}: ${message}`;
  const command = (raw as { command?: { name?: unknown } } | null)?.command?.name;
  switch (kind) {
    case 'auth':
      return new LockConfigError('auth', `${text} (check the user and password of the lock URL)`, {
        cause: error,
      });
    case 'permission':
      return new LockConfigError(
        'permission',
        command === 'evalsha' || command === 'eval'
          ? `${text} (the ACL user may not run the lock's Lua scripts (EVALSHA, EVAL) or lacks permission on the lock keys or channels; grant the rule in docs/server-setup.md — a provider that forbids scripting cannot host the Redis lock)`
          : `${text} (the ACL user lacks permission on the lock keys)`,
        { cause: error },
      );
    case 'database':
      return new LockConfigError('url', `${text} (check ?db=N of the lock URL)`, { cause: error });
    case 'tls':
      return new LockConfigError('tls', `${text} (TLS handshake failed)`, { cause: error });
    case 'oom':
    case 'readonly':
    case 'timeout':
    case 'connection':
      return new LockUnavailableError(kind, text, { cause: error });
  }
}

/** Settings of one Redis deployment's connections (everything except the lock key). */
export interface ConnectionSettings {
  /** The parsed lock URL (its `key` is not part of the connection). */
  url: RedisLockUrl;
  ca: string | Buffer | undefined;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** Redacted URL for messages. */
  where: string;
}

export const schemeOf = (url: RedisLockUrl): string =>
  `${url.tls ? 'rediss' : 'redis'}${url.deployment === 'standalone' ? '' : `+${url.deployment}`}://`;

/** TLS options for a connection to `host` (SNI only for names, never for IP addresses). */
export function tlsFor(s: ConnectionSettings, host?: string): RedisOptions['tls'] {
  return {
    ...(host !== undefined && !isIP(host) ? { servername: host } : {}),
    ...(s.ca === undefined ? {} : { ca: s.ca }),
  };
}

/** What every connection the lock opens has in common, whatever it is for. */
export const FAIL_FAST = {
  lazyConnect: true,
  // Fail fast instead of queueing while disconnected; do not retry commands across reconnects.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  enableReadyCheck: false,
  // No CLIENT SETINFO before ready: one round trip less, and one command less for the ACL rule.
  disableClientInfo: true,
  // NOTE: ioredis ends a socket on disconnect and arms a timer (default 2 s) to destroy it unless it
  // closes; the timer is never cleared for a socket that had already failed, and a black hole never
  // closes: either way the process stayed alive 2 s after close() (issue 16). Destroy at once.
  disconnectTimeout: 0,
} as const satisfies RedisOptions;

/** Timeouts and retry limits of every Redis connection the lock owns (also a duplicate of an injected client). */
export function robustOptions(s: ConnectionSettings): RedisOptions {
  return {
    ...FAIL_FAST,
    connectTimeout: s.connectTimeoutMs,
    commandTimeout: s.commandTimeoutMs,
    // NOTE: a bounded reconnect (about 0.6 s in all), then the client ends; the next call reconnects on
    // demand. No background loop ever outlives a misconfiguration or keeps the process alive.
    retryStrategy: (times: number) => (times > 3 ? null : Math.min(times * 100, 300)),
    // A master demoted to a replica answers READONLY: reconnect, so that Sentinel names the new master
    // (the failed command is not resent: 1, not 2).
    reconnectOnError: (error: Error) =>
      s.url.deployment === 'sentinel' && redisReplyCode(error) === 'READONLY' ? 1 : false,
  };
}

/** ioredis options of a lock-owned standalone or Sentinel connection. */
export function clientOptions(s: ConnectionSettings): RedisOptions {
  const u = s.url;
  const auth = { username: u.username, password: u.password };
  if (u.deployment === 'standalone') {
    return {
      host: u.host,
      port: u.port,
      ...auth,
      db: u.db,
      tls: u.tls ? tlsFor(s, u.host) : undefined,
      ...robustOptions(s),
    };
  }
  if (u.deployment === 'sentinel') {
    return {
      sentinels: u.sentinels.map((h) => ({ host: h.host, port: h.port })),
      name: u.masterName,
      role: 'master',
      sentinelUsername: u.sentinelUsername,
      sentinelPassword: u.sentinelPassword,
      // `rediss+sentinel://`: TLS to the sentinels and to the master they name.
      enableTLSForSentinelMode: u.tls,
      sentinelTLS: u.tls ? tlsFor(s) : undefined,
      tls: u.tls ? tlsFor(s) : undefined,
      ...auth,
      db: u.db,
      sentinelCommandTimeout: s.connectTimeoutMs,
      // One pass over the sentinels per connect; the lock's own (bounded) reconnect does the rest.
      sentinelRetryStrategy: () => null,
      // NOTE: no failoverDetector: its extra sentinel connections would keep an idle process alive. A dead
      // master closes the connection, and the reconnect asks the sentinels for the new one.
      failoverDetector: false,
      ...robustOptions(s),
    };
  }
  throw new Error('clientOptions: cluster settings need clusterOptions');
}

/** ioredis options of a lock-owned Cluster (command connection, or subscriber with sharded pub/sub). */
export function clusterOptions(s: ConnectionSettings, shardedSubscribers = false): ClusterOptions {
  const u = s.url;
  return {
    lazyConnect: true,
    // Fail fast while the cluster is not ready (no cluster-wide offline queue).
    enableOfflineQueue: false,
    enableReadyCheck: true,
    // NOTE: as for one server, a bounded reconnect (a node lost makes ioredis reconnect the whole
    // cluster), then the client ends and the next call reconnects on demand.
    clusterRetryStrategy: (times: number) => (times > 3 ? null : Math.min(times * 100, 300)),
    // NOTE: topology changes arrive as MOVED / ASK replies, which ioredis follows (and then refreshes its
    // slot map); a periodic refresh would be a timer that keeps an idle process alive.
    slotsRefreshInterval: 0,
    slotsRefreshTimeout: s.connectTimeoutMs,
    maxRedirections: 16,
    retryDelayOnMoved: 0,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    // Through a TLS endpoint (ElastiCache, MemoryDB) the node names must reach TLS unresolved, so that
    // the certificate is checked against the name, not an IP address.
    ...(u.tls ? { dnsLookup: (address: string, callback) => callback(null, address) } : {}),
    shardedSubscribers,
    redisOptions: {
      username: u.username,
      password: u.password,
      tls: u.tls ? tlsFor(s) : undefined,
      ...FAIL_FAST,
      connectTimeout: s.connectTimeoutMs,
      commandTimeout: s.commandTimeoutMs,
      reconnectOnError: () => false,
    },
  };
}

/** A new lock-owned command connection for `s`. */
export function createClient(io: IoredisModule, s: ConnectionSettings): LockClient {
  if (s.url.deployment === 'cluster') {
    return new io.Cluster(
      s.url.nodes.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions(s),
    );
  }
  return trackSentinelConnections(new io.Redis(clientOptions(s)));
}

/** The connections ioredis opened to sentinels on behalf of a client (see {@link trackSentinelConnections}). */
const sentinelConnections = new WeakMap<LockClient, Set<Redis>>();

/**
 * ioredis opens a connection to each sentinel it asks for the master, with its own defaults: a 2 s
 * `disconnectTimeout` and no way to end it from outside. Asked while the sentinel is a black hole, such a
 * connection kept the process alive seconds after close(). Its connector's factory is wrapped so that
 * these connections close at once and are ended by {@link closeClient}. When the connector is not
 * there (another ioredis layout), nothing is wrapped and only the exit delay remains.
 */
export function trackSentinelConnections<C extends LockClient>(client: C): C {
  const connector = (client as unknown as { connector?: { connectToSentinel?: unknown } }).connector;
  const original = connector?.connectToSentinel;
  if (!connector || typeof original !== 'function') return client;
  const opened = new Set<Redis>();
  sentinelConnections.set(client, opened);
  connector.connectToSentinel = function (this: unknown, endpoint: unknown, options?: object) {
    const redis = (original as (e: unknown, o?: object) => Redis).call(this, endpoint, {
      disconnectTimeout: 0,
      ...options,
    });
    opened.add(redis);
    redis.once('end', () => opened.delete(redis));
    return redis;
  };
  return client;
}

/** Whether `client` is a Cluster (by its ioredis flag, never by a message). */
export const isCluster = (client: LockClient): client is Cluster =>
  (client as { isCluster?: boolean }).isCluster === true;

/** The Redis nodes behind `client` (itself, or a Cluster's node connections). */
function nodesOf(client: LockClient): Redis[] {
  return isCluster(client) ? client.nodes('all') : [client];
}

/**
 * An idle lock connection must not keep the process alive (a CLI that forgets `close()` still exits).
 * In-flight commands are unaffected: the lock's command timeout timer keeps the loop alive meanwhile.
 */
export function unrefSockets(client: LockClient): void {
  const unref = (redis: Redis) =>
    redis.on('connect', () => {
      (redis as unknown as { stream?: { unref?: () => void } }).stream?.unref?.();
    });
  if (isCluster(client)) client.on('+node', unref);
  else unref(client);
}

const abortError = (signal: AbortSignal): unknown =>
  signal.reason ?? new LockUnavailableError('connection', 'connect aborted');

/**
 * Connects `client` (status `wait` or `end`) and checks it with PING, all within the connect timeout.
 * On failure the client is disconnected for good (no reconnect loop) and a typed error is thrown; for a
 * Sentinel or Cluster deployment a short diagnosis names the problem (an unknown master name, a node not
 * in cluster mode, refused credentials). `signal` (the lock's close) ends the attempt at once.
 */
export async function connectClient(
  io: IoredisModule,
  client: LockClient,
  s: ConnectionSettings,
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  client.on('error', onError);
  if (isCluster(client)) client.on('node error', onError);
  else client.on('sentinelError', onError);
  // NOTE: no reconnects while connecting: a failed first connect must end the client (status 'end'), and
  // ioredis' disconnect() during 'reconnecting' can leave the status stuck there.
  const options = client.options as { retryStrategy?: unknown; clusterRetryStrategy?: unknown };
  const strategyKey = isCluster(client) ? 'clusterRetryStrategy' : 'retryStrategy';
  const retryStrategy = options[strategyKey];
  options[strategyKey] = () => null;
  // The diagnosis (TLS to a plaintext port, an unknown master, a node not in cluster mode) gets a slice
  // of the budget, so that the whole attempt stays within connectTimeoutMs.
  const diagnoseBudget =
    s.url.tls || s.url.deployment !== 'standalone' ? Math.min(1_000, Math.floor(s.connectTimeoutMs / 4)) : 0;
  const connectBudget = s.connectTimeoutMs - diagnoseBudget;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LockUnavailableError('timeout', `${s.where}: connect timed out after ${connectBudget} ms`),
        ),
      connectBudget,
    );
    onAbort = () => reject(abortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        if (isCluster(client)) {
          // Open every master's connection now: a node connection still connecting when a command
          // arrives fails it at once (no offline queue), which would turn the first acquire into
          // `unavailable`.
          await Promise.all(client.nodes('master').map((node) => node.ping()));
        } else {
          await client.ping();
          // NOTE: ioredis reports a failed SELECT of `db` only as an 'error' event and then runs commands
          // on database 0; select explicitly so `?db=99` on a 16-database server is an error.
          const db = s.url.deployment === 'cluster' ? 0 : s.url.db;
          if (db !== 0) await client.select(db);
        }
      })(),
      timeout,
    ]);
  } catch (error) {
    client.disconnect(false);
    if (signal?.aborted) throw abortError(signal);
    // Prefer the server's own verdict (WRONGPASS arrives as an 'error' event, the command then just fails).
    const reply = errors.find((e) => redisReplyCode(e) !== undefined);
    // ...and a certificate failure over the generic "Connection is closed" it causes.
    const tls = s.url.tls ? errors.find(isTlsFailure) : undefined;
    let err = classifyRedisError(reply ?? tls ?? error, s.where);
    if (err instanceof LockUnavailableError && diagnoseBudget > 0) {
      err = (await diagnose(io, s, diagnoseBudget)) ?? err;
    }
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    options[strategyKey] = retryStrategy;
    client.off('error', onError);
    client.off('node error', onError);
    client.off('sentinelError', onError);
  }
}

/**
 * Makes sure `client` is ready: connects on demand, waits for an ongoing (bounded) reconnect. `signal`
 * (the lock's close) ends the wait at once.
 */
export async function ensureReady(
  io: IoredisModule,
  client: LockClient,
  s: ConnectionSettings,
  signal?: AbortSignal,
): Promise<void> {
  const until = performance.now() + s.connectTimeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const status = client.status;
    if (status === 'ready') return;
    if (status === 'wait' || status === 'end') return connectClient(io, client, s, signal);
    // connecting / connect / reconnecting / close: ioredis is inside its bounded reconnect; it either gets
    // ready or ends within about a second. Polling its status here is cheaper than juggling its events.
    if (performance.now() >= until) {
      throw new LockUnavailableError('timeout', `${s.where}: not connected within ${s.connectTimeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Closes a client politely (QUIT) with a bound, then for good. Never throws. */
export async function closeClient(client: LockClient, timeoutMs: number): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.quit().catch(() => undefined),
      new Promise((r) => {
        timer = setTimeout(r, Math.min(timeoutMs, 1_000));
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
  client.disconnect(false);
  for (const node of isCluster(client) ? nodesOf(client) : []) node.disconnect(false);
  for (const sentinel of sentinelConnections.get(client) ?? []) sentinel.disconnect(false);
}

/** A stable, secret-free identity of connection settings (passwords only as a hash). */
export function settingsIdentity(s: ConnectionSettings): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ ...s.url, key: undefined }));
  h.update(JSON.stringify([s.connectTimeoutMs, s.commandTimeoutMs]));
  if (s.ca !== undefined) h.update(s.ca);
  return h.digest('hex');
}

/**
 * Bounds one lock command by `commandTimeoutMs` with a typed `timeout` error. ioredis' own
 * `commandTimeout` rejects with an untyped error (no code) and, in a Cluster, does not cover the
 * redirections of a command; this timer is armed first with the same duration, so it fires first and the
 * decision needs no message text. It also bounds injected clients.
 */
export async function withCommandTimeout<T>(run: () => Promise<T>, s: ConnectionSettings): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LockUnavailableError('timeout', `${s.where}: command timed out after ${s.commandTimeoutMs} ms`),
        ),
      s.commandTimeoutMs,
    );
  });
  try {
    return await Promise.race([run(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
