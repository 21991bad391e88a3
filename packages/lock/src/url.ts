import { LockConfigError } from './errors.js';

/** `local:` (or an empty URL): the lock for processes of one machine (lock files, or in-process). */
export interface LocalLockUrl {
  readonly kind: 'local';
}

/** `redis://…` / `rediss://…`: the Redis lease lock of `@task-cache/lock/redis`. */
export interface RedisLockUrl {
  readonly kind: 'redis';
  /** `true` for `rediss://`. */
  readonly tls: boolean;
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. @default 6379 */
  readonly port: number;
  /** ACL user name (percent-decoded), if any. */
  readonly username: string | undefined;
  /** Password (percent-decoded), if any. Never print it: use {@link describeLockUrl}. */
  readonly password: string | undefined;
  /** Database number from `?db=N`. @default 0 */
  readonly db: number;
  /** CA bundle path from `?ca=PATH` (only with `rediss://`). */
  readonly caPath: string | undefined;
  /** Lock key: the percent-decoded URL path without its leading `/`; `undefined` when empty. */
  readonly key: string | undefined;
}

/**
 * A parsed lock URL (see {@link parseLockUrl}), discriminated by `kind`. More kinds will join the union
 * (e.g. Sentinel and Cluster deployments): switch on `kind` and keep a default branch.
 */
export type LockUrl = LocalLockUrl | RedisLockUrl;

const fail = (message: string, cause?: unknown): never => {
  throw new LockConfigError(
    'url',
    `invalid lock URL: ${message}`,
    cause === undefined ? undefined : { cause },
  );
};

const decode = (part: string, what: string): string => {
  try {
    return decodeURIComponent(part);
  } catch (cause) {
    // NOTE: never echo `part`: it may be (a piece of) the password.
    return fail(`the ${what} contains an invalid percent-encoding`, cause);
  }
};

/** One parser per scheme; a new deployment form (issue 18) is one more entry and one more union member. */
const SCHEMES: Record<string, (protocol: string, rest: string) => LockUrl> = {
  local: parseLocal,
  redis: parseRedis,
  rediss: parseRedis,
};
const SUPPORTED = 'redis://[USER][:PASSWORD]@HOST[:PORT]/KEY, rediss://…, local: or an empty string';

/**
 * Parses a lock URL. The one lock-URL grammar of task-cache:
 *
 * - `''` (or only white space), `local:`, `local://` — the lock for one machine (`kind: 'local'`).
 * - `redis://[USER][:PASSWORD]@HOST[:PORT][/KEY][?db=N]` and `rediss://…[?ca=PATH]` — the Redis lease lock
 *   (`kind: 'redis'`). The path is the lock key, not a database number (use `?db=N`). User, password and
 *   key are percent-decoded; `@ / # ? :` in a password must be percent-encoded, and an unencoded one is a
 *   {@link LockConfigError} rather than a silently different host.
 *
 * Surrounding white space is ignored. Nothing else is thrown (never a `URIError`), and no message ever
 * contains the password.
 *
 * @throws {LockConfigError} reason `'url'`, naming what is wrong.
 */
export function parseLockUrl(url: string | URL): LockUrl {
  if (typeof url !== 'string' && !(url instanceof URL)) {
    fail(`expected a string or a URL, got ${url === null ? 'null' : typeof url}`);
  }
  const text = (typeof url === 'string' ? url : url.href).trim();
  if (text === '') return { kind: 'local' };
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text);
  if (!scheme) fail(`expected ${SUPPORTED}`);
  const protocol = scheme![1]!.toLowerCase();
  const parse = Object.hasOwn(SCHEMES, protocol) ? SCHEMES[protocol]! : undefined;
  if (!parse) fail(`unsupported scheme "${protocol}:" (expected ${SUPPORTED})`);
  return parse!(protocol, text.slice(scheme![0].length));
}

function parseLocal(_protocol: string, rest: string): LockUrl {
  if (rest !== '' && rest !== '//') fail('local: takes no host, path or parameters');
  return { kind: 'local' };
}

function parseRedis(protocol: string, afterColon: string): LockUrl {
  if (!afterColon.startsWith('//')) fail(`expected ${protocol}://[USER][:PASSWORD]@HOST[:PORT]/KEY`);
  const rest = afterColon.slice(2);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd === -1 ? '' : rest.slice(authorityEnd);

  const at = authority.lastIndexOf('@');
  if (at !== authority.indexOf('@')) {
    fail("the user info contains an unencoded '@'; percent-encode it as %40");
  }
  if (at === -1 && tail.includes('@')) {
    // e.g. redis://:pa/ss@host or redis://:pa#ss@host — the authority ended inside the password.
    fail("the user info seems to contain an unencoded '/', '?' or '#'; percent-encode them (%2F, %3F, %23)");
  }
  let username: string | undefined;
  let password: string | undefined;
  const hostPort = at === -1 ? authority : authority.slice(at + 1);
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const rawUser = colon === -1 ? userinfo : userinfo.slice(0, colon);
    username = rawUser === '' ? undefined : decode(rawUser, 'user name');
    if (colon !== -1) password = decode(userinfo.slice(colon + 1), 'password');
    if (password === '') password = undefined;
  }

  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close === -1) fail('unterminated IPv6 address in the host');
    host = hostPort.slice(1, close);
    const after = hostPort.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) fail('unexpected characters after the IPv6 address');
    portText = after === '' ? undefined : after.slice(1);
  } else {
    const colon = hostPort.indexOf(':');
    host = colon === -1 ? hostPort : hostPort.slice(0, colon);
    portText = colon === -1 ? undefined : hostPort.slice(colon + 1);
  }
  if (host === '') fail(`the host is missing; expected ${protocol}://[USER][:PASSWORD]@HOST[:PORT]/KEY`);
  if (!/^[A-Za-z0-9.\-_:%]+$/.test(host)) fail(`the host "${host}" contains invalid characters`);
  let port = 6379;
  if (portText !== undefined && portText !== '') {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      fail(`the port "${portText}" is not a number between 1 and 65535`);
    }
    port = Number(portText);
  }

  const hash = tail.indexOf('#');
  const beforeHash = hash === -1 ? tail : tail.slice(0, hash);
  const q = beforeHash.indexOf('?');
  const path = q === -1 ? beforeHash : beforeHash.slice(0, q);
  const query = q === -1 ? '' : beforeHash.slice(q + 1);
  const rawKey = path.replace(/^\//, '');
  const key = rawKey === '' ? undefined : decode(rawKey, 'path (lock key)');

  let db = 0;
  let caPath: string | undefined;
  for (const [name, value] of queryParams(query)) {
    if (name === 'db') {
      // NOTE: ioredis would send `SELECT NaN` for a non-numeric db and crash the process; refuse it here.
      if (!/^\d{1,9}$/.test(value)) fail(`?db must be a non-negative integer, got "${value}"`);
      db = Number(value);
    } else if (name === 'ca') {
      if (protocol !== 'rediss') fail('?ca is only valid with rediss://');
      if (value === '') fail('?ca must be a file path');
      caPath = value;
    } else {
      fail(`unknown query parameter "${name}" (supported: db, ca)`);
    }
  }
  return { kind: 'redis', tls: protocol === 'rediss', host, port, username, password, db, caPath, key };
}

/**
 * `URLSearchParams` would silently keep a malformed `%` escape as is; here it is an error like everywhere
 * else in the URL.
 */
function queryParams(query: string): Array<[string, string]> {
  if (query === '') return [];
  return query.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    return [
      decode(name.replace(/\+/g, ' '), 'query'),
      decode(value.replace(/\+/g, ' '), `?${name.replace(/[^A-Za-z0-9_-]/g, '')} value`),
    ];
  });
}

/**
 * A parsed lock URL as shown in messages and events: scheme, user, host and port, with the password as
 * `***` and without key or parameters (`redis://u:***@h:6379`); `local:` for the local lock.
 */
export function describeLockUrl(url: LockUrl): string {
  if (url.kind === 'local') return 'local:';
  const user = url.username === undefined ? '' : encodeURIComponent(url.username);
  const auth = url.password === undefined ? (user ? `${user}@` : '') : `${user}:***@`;
  const host = url.host.includes(':') ? `[${url.host}]` : url.host;
  return `${url.tls ? 'rediss' : 'redis'}://${auth}${host}:${url.port}`;
}
