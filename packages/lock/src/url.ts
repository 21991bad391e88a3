import { LockConfigError } from './errors.js';

/** A parsed lock URL (see {@link parseLockUrl}). The password is never part of any message. */
export interface LockUrl {
  /** `true` for `rediss://`. */
  tls: boolean;
  /** Host name or IP address (IPv6 without brackets). */
  host: string;
  /** TCP port. @default 6379 */
  port: number;
  /** ACL user name (percent-decoded), if any. */
  username: string | undefined;
  /** Password (percent-decoded), if any. */
  password: string | undefined;
  /** Database number from `?db=N`. @default 0 */
  db: number;
  /** CA bundle path from `?ca=PATH` (only with `rediss://`). */
  caPath: string | undefined;
  /** Lock key: the percent-decoded URL path without its leading `/`; `undefined` when empty. */
  key: string | undefined;
}

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

/**
 * Parses `redis://[USER][:PASSWORD]@HOST[:PORT]/KEY[?db=N]` and `rediss://…[?ca=PATH]`.
 *
 * The path is the lock key, not a database number (use `?db=N`). User and password are percent-decoded;
 * `@ / # ? :` in a password must be percent-encoded, and an unencoded one is a {@link LockConfigError}
 * (reason `'url'`) rather than a silently different host. No message ever contains the password.
 *
 * @throws {LockConfigError} reason `'url'`.
 */
export function parseLockUrl(url: string | URL): LockUrl {
  const text = typeof url === 'string' ? url : url.href;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (!scheme) fail('expected redis://[USER][:PASSWORD]@HOST[:PORT]/KEY or rediss://…');
  const protocol = scheme![1]!.toLowerCase();
  if (protocol !== 'redis' && protocol !== 'rediss') {
    fail(`unsupported scheme "${protocol}:" (expected redis: or rediss:)`);
  }
  const rest = text.slice(scheme![0].length);
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
  if (host === '') fail('the host is missing');
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
  for (const [name, value] of new URLSearchParams(query)) {
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
  return { tls: protocol === 'rediss', host, port, username, password, db, caPath, key };
}

/** The URL without its password (for messages). */
export function redactLockUrl(url: LockUrl): string {
  const user = url.username === undefined ? '' : encodeURIComponent(url.username);
  const auth = url.password === undefined ? (user ? `${user}@` : '') : `${user}:***@`;
  const host = url.host.includes(':') ? `[${url.host}]` : url.host;
  return `${url.tls ? 'rediss' : 'redis'}://${auth}${host}:${url.port}`;
}
