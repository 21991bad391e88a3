/**
 * What a failed connect asks the servers themselves (TLS to a plaintext port, refused credentials, an
 * unknown Sentinel master name, a node not in cluster mode), so the error names the fix. Split from
 * connection.ts, which opens and closes the lock's connections.
 */
import { connect as netConnect } from 'node:net';
import type { Redis } from 'ioredis';
import { LockConfigError, type LockError, LockUnavailableError } from '../errors.js';
import { redisReplyCode } from '../redis-errors.js';
import type { LockUrlHost, RedisLockUrl } from '../url.js';
import {
  type ConnectionSettings,
  classifyRedisError,
  FAIL_FAST,
  type IoredisModule,
  schemeOf,
  tlsFor,
} from './connection.js';

/** Tells `rediss://` to a plaintext port apart from an unreachable host: a plaintext server answers PING. */
function probePlaintext(host: string, port: number, timeoutMs: number): Promise<boolean> {
  if (timeoutMs <= 0) return Promise.resolve(false);
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

/** The server a diagnosis talks to first: the host, the first sentinel or the first seed node. */
function firstHost(url: RedisLockUrl): LockUrlHost {
  if (url.deployment === 'standalone') return { host: url.host, port: url.port };
  if (url.deployment === 'sentinel') return url.sentinels[0]!;
  return url.nodes[0]!;
}

/**
 * After a failed connect: asks the servers themselves what is wrong, within `budgetMs`. Returns a
 * {@link LockConfigError} for a misconfiguration (TLS to a plaintext port, refused credentials, an
 * unknown master name, a node not in cluster mode), `undefined` when nothing is known to be wrong.
 */
export async function diagnose(
  io: IoredisModule,
  s: ConnectionSettings,
  budgetMs: number,
): Promise<LockError | undefined> {
  const until = performance.now() + budgetMs;
  const left = () => Math.max(0, Math.floor(until - performance.now()));
  const u = s.url;
  const first = firstHost(u);
  if (u.tls && (await probePlaintext(first.host, first.port, Math.min(500, left())))) {
    return new LockConfigError(
      'tls',
      `${s.where}: ${schemeOf(u)} used, but ${first.host}:${first.port} answers in plaintext (use ${schemeOf({ ...u, tls: false })})`,
    );
  }
  if (u.deployment === 'sentinel') {
    for (const sentinel of u.sentinels) {
      if (left() <= 0) return undefined;
      const answer = await probe(io, s, sentinel, u.sentinelUsername, u.sentinelPassword, left(), (r) =>
        r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', u.masterName),
      );
      if (answer.error instanceof LockConfigError) {
        return new LockConfigError(
          answer.error.reason,
          `${answer.error.message} (the sentinel ${sentinel.host}:${sentinel.port} refused the connection; its own user and password are ?sentinel_username= and ?sentinel_password=)`,
          { cause: answer.error },
        );
      }
      if (answer.error === undefined && answer.value === null) {
        return new LockConfigError(
          'url',
          `${s.where}: the sentinel ${sentinel.host}:${sentinel.port} monitors no master named "${u.masterName}" (check the master name, the first path segment of the lock URL)`,
        );
      }
      if (answer.error === undefined && Array.isArray(answer.value)) {
        const [host, port] = answer.value as [string, string];
        const master = await probe(io, s, { host, port: Number(port) }, u.username, u.password, left(), (r) =>
          r.ping(),
        );
        return master.error instanceof LockConfigError ? master.error : undefined;
      }
    }
    return undefined;
  }
  if (u.deployment === 'cluster') {
    for (const node of u.nodes) {
      if (left() <= 0) return undefined;
      const answer = await probe(io, s, node, u.username, u.password, left(), (r) => r.info('cluster'));
      if (answer.error instanceof LockConfigError) return answer.error;
      if (answer.error === undefined && /^cluster_enabled:0\r?$/m.test(String(answer.value))) {
        return new LockConfigError(
          'url',
          `${s.where}: ${node.host}:${node.port} is not in cluster mode (cluster_enabled:0); use ${u.tls ? 'rediss' : 'redis'}:// for a standalone server`,
        );
      }
    }
  }
  return undefined;
}

/** One command on a short-lived plain connection to `host` (no retries, bounded by `timeoutMs`). */
async function probe(
  io: IoredisModule,
  s: ConnectionSettings,
  host: LockUrlHost,
  username: string | undefined,
  password: string | undefined,
  timeoutMs: number,
  run: (redis: Redis) => Promise<unknown>,
): Promise<{ value?: unknown; error?: LockError }> {
  const where = `${s.url.tls ? 'rediss' : 'redis'}://${host.host.includes(':') ? `[${host.host}]` : host.host}:${host.port}`;
  const redis = new io.Redis({
    host: host.host,
    port: host.port,
    username,
    password,
    tls: s.url.tls ? tlsFor(s, host.host) : undefined,
    ...FAIL_FAST,
    connectTimeout: Math.max(1, timeoutMs),
    commandTimeout: Math.max(1, timeoutMs),
    retryStrategy: () => null,
  });
  const errors: unknown[] = [];
  redis.on('error', (e: unknown) => errors.push(e));
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([
      (async () => {
        await redis.connect();
        return await run(redis);
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new LockUnavailableError('timeout', `${where}: no answer`)),
          timeoutMs,
        );
      }),
    ]);
    return { value };
  } catch (error) {
    const reply = errors.find((e) => redisReplyCode(e) !== undefined);
    return { error: classifyRedisError(reply ?? error, where) };
  } finally {
    clearTimeout(timer);
    redis.disconnect(false);
  }
}
