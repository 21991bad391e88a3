import { createHash } from 'node:crypto';
import { isIP, connect as netConnect } from 'node:net';
import type { Redis, RedisOptions } from 'ioredis';
import { LockConfigError, LockError, LockUnavailableError } from '../errors.js';
import { classifyRedisFailure, isTlsFailure, redisReplyCode } from '../redis-errors.js';

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
  switch (kind) {
    case 'auth':
      return new LockConfigError('auth', `${text} (check the user and password of the lock URL)`, {
        cause: error,
      });
    case 'permission':
      return new LockConfigError('permission', `${text} (the ACL user lacks permission on the lock keys)`, {
        cause: error,
      });
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

/** Settings of one Redis connection (everything except the lock key). */
export interface ConnectionSettings {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: boolean;
  ca: string | Buffer | undefined;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** Redacted URL for messages. */
  where: string;
}

/** ioredis options of a lock-owned connection. */
export function clientOptions(s: ConnectionSettings): RedisOptions {
  return {
    host: s.host,
    port: s.port,
    username: s.username,
    password: s.password,
    db: s.db,
    tls: s.tls
      ? { ...(isIP(s.host) ? {} : { servername: s.host }), ...(s.ca === undefined ? {} : { ca: s.ca }) }
      : undefined,
    ...robustOptions(s),
  };
}

/** Timeouts and retry limits of every connection the lock owns (also a duplicate of an injected client). */
export function robustOptions(s: ConnectionSettings): RedisOptions {
  return {
    lazyConnect: true,
    // Fail fast instead of queueing while disconnected; do not retry commands across reconnects.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
    connectTimeout: s.connectTimeoutMs,
    commandTimeout: s.commandTimeoutMs,
    // NOTE: a bounded reconnect (about 0.6 s in all), then the client ends; the next call reconnects on
    // demand. No background loop ever outlives a misconfiguration or keeps the process alive.
    retryStrategy: (times: number) => (times > 3 ? null : Math.min(times * 100, 300)),
    reconnectOnError: () => false,
  };
}

/** Tells `rediss://` to a plaintext port apart from an unreachable host: a plaintext server answers PING. */
function probePlaintext(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    const finish = (plain: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(plain);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => finish(data[0] === 0x2b /* + */ || data[0] === 0x2d /* - */));
    socket.on('error', () => finish(false));
  });
}

/**
 * Connects `client` (status `wait` or `end`) and checks it with PING, all within the connect timeout.
 * On failure the client is disconnected for good (no reconnect loop) and a typed error is thrown.
 */
export async function connectClient(client: Redis, s: ConnectionSettings): Promise<void> {
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  client.on('error', onError);
  // NOTE: no reconnects while connecting: a failed first connect must end the client (status 'end'), and
  // ioredis' disconnect() during 'reconnecting' can leave the status stuck there.
  const retryStrategy = client.options.retryStrategy;
  client.options.retryStrategy = () => null;
  const probeBudget = s.tls ? Math.min(500, Math.floor(s.connectTimeoutMs / 4)) : 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new LockUnavailableError(
            'timeout',
            `${s.where}: connect timed out after ${s.connectTimeoutMs - probeBudget} ms`,
          ),
        ),
      s.connectTimeoutMs - probeBudget,
    );
  });
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.ping();
        // NOTE: ioredis reports a failed SELECT of `db` only as an 'error' event and then runs commands on
        // database 0; select explicitly so `?db=99` on a 16-database server is an error.
        if (s.db !== 0) await client.select(s.db);
      })(),
      timeout,
    ]);
  } catch (error) {
    client.disconnect(false);
    // Prefer the server's own verdict (WRONGPASS arrives as an 'error' event, the command then just fails).
    const reply = errors.find((e) => redisReplyCode(e) !== undefined);
    // ...and a certificate failure over the generic "Connection is closed" it causes.
    const tls = s.tls ? errors.find(isTlsFailure) : undefined;
    let err = classifyRedisError(reply ?? tls ?? error, s.where);
    if (s.tls && err instanceof LockUnavailableError && (await probePlaintext(s.host, s.port, probeBudget))) {
      err = new LockConfigError('tls', `${s.where}: rediss:// used, but the server answers in plaintext`, {
        cause: scrubError(error),
      });
    }
    throw err;
  } finally {
    clearTimeout(timer);
    client.options.retryStrategy = retryStrategy;
    client.off('error', onError);
  }
}

/** Makes sure `client` is ready: connects on demand, waits for an ongoing (bounded) reconnect. */
export async function ensureReady(client: Redis, s: ConnectionSettings): Promise<void> {
  const until = performance.now() + s.connectTimeoutMs;
  for (;;) {
    const status = client.status;
    if (status === 'ready') return;
    if (status === 'wait' || status === 'end') return connectClient(client, s);
    // connecting / connect / reconnecting / close: ioredis is inside its bounded reconnect; it either gets
    // ready or ends within about a second. Polling its status here is cheaper than juggling its events.
    if (performance.now() >= until) {
      throw new LockUnavailableError('timeout', `${s.where}: not connected within ${s.connectTimeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Closes a client politely (QUIT) with a bound, then for good. Never throws. */
export async function closeClient(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    await Promise.race([
      client.quit().catch(() => undefined),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }
  client.disconnect(false);
}

/** A stable, secret-free identity of connection settings (the password only as a hash). */
export function settingsIdentity(s: ConnectionSettings): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([s.host, s.port, s.username, s.password, s.db, s.tls, s.connectTimeoutMs]));
  h.update(JSON.stringify([s.commandTimeoutMs]));
  if (s.ca !== undefined) h.update(s.ca);
  return h.digest('hex');
}

/**
 * Bounds one lock command by `commandTimeoutMs` with a typed `timeout` error. ioredis' own
 * `commandTimeout` rejects with an untyped error (no code); this timer is armed first with the same
 * duration, so it fires first and the decision needs no message text. It also bounds injected clients.
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
