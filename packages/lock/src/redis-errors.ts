/**
 * Classification of Redis trouble, in one place for every Redis user of task-cache (the lock's Redis
 * backend, core's Redis entry store, core's run). It needs nothing from ioredis at run time.
 *
 * Decisions are made on the protocol's error code, i.e. the first word of a RESP error reply
 * (`-OOM command not allowed…` → `OOM`), on the command a reply answered, and on the `code` of socket and
 * TLS errors — never on the free text of a message.
 */

/**
 * What kind of Redis trouble an error is:
 * - `auth`: `NOAUTH` / `WRONGPASS`, or any error reply to `AUTH` (Redis < 6 answers `ERR invalid password`);
 * - `permission`: `NOPERM` (an ACL user lacking a key, channel or command permission);
 * - `database`: an error reply to `SELECT` (a `?db=N` beyond the server's `databases`);
 * - `oom`: `OOM` (`maxmemory` reached under `noeviction`); `readonly`: `READONLY` (a replica);
 * - `timeout`: a socket `ETIMEDOUT`; `tls`: a TLS handshake or certificate failure;
 * - `connection`: anything else (refused, reset, closed, another error reply).
 */
export type RedisFailureKind =
  | 'auth'
  | 'permission'
  | 'database'
  | 'oom'
  | 'readonly'
  | 'timeout'
  | 'tls'
  | 'connection';

interface ReplyErrorLike {
  name: string;
  message: string;
  command?: { name?: unknown };
}

const isReplyError = (error: unknown): error is ReplyErrorLike =>
  error instanceof Error && error.name === 'ReplyError';

/**
 * The error code of a Redis error reply (`OOM`, `READONLY`, `NOPERM`, `WRONGPASS`, `ERR`, …): the first
 * word of the RESP error, as ioredis' `ReplyError` carries it. `undefined` for anything that is not an
 * error reply (socket errors, timeouts, other errors).
 */
export function redisReplyCode(error: unknown): string | undefined {
  if (!isReplyError(error)) return undefined;
  const space = error.message.indexOf(' ');
  const word = space === -1 ? error.message : error.message.slice(0, space);
  return /^[A-Z][A-Z0-9_-]*$/.test(word) ? word : undefined;
}

/** OpenSSL certificate verification codes as Node reports them on `error.code`. */
const CERT_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'HOSTNAME_MISMATCH',
  'INVALID_CA',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

/** A TLS handshake or certificate failure, by Node's / OpenSSL's error `code`. */
export function isTlsFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return (
    code === 'EPROTO' || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || CERT_CODES.has(code)
  );
}

/** Tells what kind of Redis trouble `error` (an ioredis or socket error) is; see {@link RedisFailureKind}. */
export function classifyRedisFailure(error: unknown): RedisFailureKind {
  const reply = redisReplyCode(error);
  if (reply !== undefined) {
    const command = (error as ReplyErrorLike).command?.name;
    if (reply === 'NOAUTH' || reply === 'WRONGPASS' || command === 'auth') return 'auth';
    if (reply === 'NOPERM') return 'permission';
    if (reply === 'OOM') return 'oom';
    if (reply === 'READONLY') return 'readonly';
    if (command === 'select') return 'database';
    return 'connection';
  }
  if ((error as { code?: unknown } | null)?.code === 'ETIMEDOUT') return 'timeout';
  if (isTlsFailure(error)) return 'tls';
  return 'connection';
}
