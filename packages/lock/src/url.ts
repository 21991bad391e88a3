import { LockConfigError } from './errors.js';

/** `local:` (or an empty URL): the lock for processes of one machine (lock files, or in-process). */
export interface LocalLockUrl {
  readonly kind: 'local';
}

/** A server address of a lock URL's host list. */
export interface LockUrlHost {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/** What every Redis lock URL has, whatever the deployment. */
interface RedisLockUrlBase {
  readonly kind: 'redis';
  /** `true` for the `rediss…` schemes: TLS to every server of the deployment. */
  readonly tls: boolean;
  /** ACL user name of the data nodes (percent-decoded), if any. */
  readonly username: string | undefined;
  /** Password of the data nodes (percent-decoded), if any. Never print it: use {@link describeLockUrl}. */
  readonly password: string | undefined;
  /** CA bundle path from `?ca=PATH` (only with the TLS schemes). */
  readonly caPath: string | undefined;
  /** Lock key: the percent-decoded key segment of the path; `undefined` when empty. */
  readonly key: string | undefined;
}

/** `redis://…` / `rediss://…`: one Redis server (standalone, or a managed service's single endpoint). */
export interface RedisStandaloneLockUrl extends RedisLockUrlBase {
  readonly deployment: 'standalone';
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. @default 6379 */
  readonly port: number;
  /** Database number from `?db=N`. @default 0 */
  readonly db: number;
}

/**
 * `redis+sentinel://…` / `rediss+sentinel://…`: a master found through Redis Sentinel (the sentinels'
 * addresses in the host list, the master's name as the first path segment).
 */
export interface RedisSentinelLockUrl extends RedisLockUrlBase {
  readonly deployment: 'sentinel';
  /** The sentinels (port @default 26379). */
  readonly sentinels: readonly LockUrlHost[];
  /** The master name the sentinels monitor (`sentinel monitor NAME …`). */
  readonly masterName: string;
  /** Database number from `?db=N`. @default 0 */
  readonly db: number;
  /** `?sentinel_username=`: the sentinels' own ACL user, if any. */
  readonly sentinelUsername: string | undefined;
  /** `?sentinel_password=`: the sentinels' own password, if any. Never print it. */
  readonly sentinelPassword: string | undefined;
}

/** `redis+cluster://…` / `rediss+cluster://…`: a Redis Cluster, reached through any of its seed nodes. */
export interface RedisClusterLockUrl extends RedisLockUrlBase {
  readonly deployment: 'cluster';
  /** Seed nodes (port @default 6379); the rest of the cluster is discovered from them. */
  readonly nodes: readonly LockUrlHost[];
}

/**
 * A Redis lock URL, discriminated by `deployment`: a standalone server, a Sentinel-managed master or a
 * Cluster. Switch on `deployment` and keep a default branch.
 */
export type RedisLockUrl = RedisStandaloneLockUrl | RedisSentinelLockUrl | RedisClusterLockUrl;

/**
 * A parsed lock URL (see {@link parseLockUrl}), discriminated by `kind` (and, for Redis, by
 * `deployment`). Switch on them and keep a default branch: more forms may join.
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

/** One parser per scheme; a new deployment form is one more entry and one more union member. */
const SCHEMES: Record<string, (protocol: string, rest: string) => LockUrl> = {
  local: parseLocal,
  redis: parseRedis,
  rediss: parseRedis,
  'redis+sentinel': parseRedis,
  'rediss+sentinel': parseRedis,
  'redis+cluster': parseRedis,
  'rediss+cluster': parseRedis,
};
const SUPPORTED =
  'redis://[USER][:PASSWORD]@HOST[:PORT]/KEY, rediss://…, redis+sentinel://[USER][:PASSWORD]@HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/KEY], rediss+sentinel://…, redis+cluster://[USER][:PASSWORD]@HOST[:PORT][,HOST[:PORT]…][/KEY], rediss+cluster://…, local: or an empty string';

const FORMS: Record<RedisLockUrl['deployment'], string> = {
  standalone: '://[USER][:PASSWORD]@HOST[:PORT]/KEY',
  sentinel: '://[USER][:PASSWORD]@HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/KEY]',
  cluster: '://[USER][:PASSWORD]@HOST[:PORT][,HOST[:PORT]…][/KEY]',
};
/** The query parameters each deployment accepts. */
const PARAMS: Record<RedisLockUrl['deployment'], readonly string[]> = {
  standalone: ['db', 'ca'],
  sentinel: ['db', 'ca', 'sentinel_username', 'sentinel_password'],
  cluster: ['ca'],
};
const DEFAULT_PORT: Record<RedisLockUrl['deployment'], number> = {
  standalone: 6379,
  sentinel: 26379,
  cluster: 6379,
};

/**
 * Parses a lock URL. The one lock-URL grammar of task-cache:
 *
 * - `''` (or only white space), `local:`, `local://` — the lock for one machine (`kind: 'local'`).
 * - `redis://[USER][:PASSWORD]@HOST[:PORT][/KEY][?db=N]` and `rediss://…[?ca=PATH]` — the Redis lease lock
 *   on one server (`kind: 'redis'`, `deployment: 'standalone'`). The path is the lock key, not a database
 *   number (use `?db=N`).
 * - `redis+sentinel://[USER][:PASSWORD]@HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/KEY]` and
 *   `rediss+sentinel://…` — a master found through Redis Sentinel (`deployment: 'sentinel'`): the host list
 *   names the sentinels (port 26379 by default), the first path segment the monitored master, the rest of
 *   the path the lock key. The user info authenticates to the master; `?sentinel_username=` and
 *   `?sentinel_password=` to the sentinels themselves. `rediss+sentinel` means TLS to both. `?db=N`, `?ca=`.
 * - `redis+cluster://[USER][:PASSWORD]@HOST[:PORT][,HOST[:PORT]…][/KEY]` and `rediss+cluster://…` — a
 *   Redis Cluster (`deployment: 'cluster'`) reached through its seed nodes (port 6379 by default); `?ca=`.
 *   A cluster has only database 0, so `?db` is refused.
 *
 * User, password, master name, key and query values are percent-decoded; `@ / # ? : ,` in a password must
 * be percent-encoded, and an unencoded one is a {@link LockConfigError} rather than a silently different
 * host. Surrounding white space is ignored. Nothing else is thrown (never a `URIError`), and no message
 * ever contains a password.
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

function parseHost(hostPort: string, protocol: string, form: string, defaultPort: number): LockUrlHost {
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
  if (host === '') fail(`the host is missing; expected ${protocol}${form}`);
  if (!/^[A-Za-z0-9.\-_:%]+$/.test(host)) fail(`the host "${host}" contains invalid characters`);
  let port = defaultPort;
  if (portText !== undefined && portText !== '') {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      fail(`the port "${portText}" is not a number between 1 and 65535`);
    }
    port = Number(portText);
  }
  return { host, port };
}

function parseRedis(protocol: string, afterColon: string): LockUrl {
  const plus = protocol.indexOf('+');
  const base = plus === -1 ? protocol : protocol.slice(0, plus);
  const deployment: RedisLockUrl['deployment'] =
    plus === -1 ? 'standalone' : (protocol.slice(plus + 1) as 'sentinel' | 'cluster');
  const tls = base === 'rediss';
  const form = FORMS[deployment];
  if (!afterColon.startsWith('//')) fail(`expected ${protocol}${form}`);
  const rest = afterColon.slice(2);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd === -1 ? '' : rest.slice(authorityEnd);

  const at = authority.lastIndexOf('@');
  if (at !== authority.indexOf('@')) {
    fail("the user info contains an unencoded '@'; percent-encode it as %40");
  }
  if (tail.includes('@')) {
    // e.g. redis://:pa/ss@host, redis://:pa#ss@host or redis://u:p@ss?x@host — the authority ended
    // inside the password. Nothing after the authority may be echoed then (it is part of the
    // password), so this is checked first, and an `@` in a lock key must be written %40.
    fail(
      "an '@' after the host: if the user info holds '/', '?' or '#', percent-encode them (%2F, %3F, %23); an '@' in the lock key must be written %40",
    );
  }
  let username: string | undefined;
  let password: string | undefined;
  const hostList = at === -1 ? authority : authority.slice(at + 1);
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const rawUser = colon === -1 ? userinfo : userinfo.slice(0, colon);
    username = rawUser === '' ? undefined : decode(rawUser, 'user name');
    if (colon !== -1) password = decode(userinfo.slice(colon + 1), 'password');
    if (password === '') password = undefined;
  }

  const parts = hostList.split(',');
  if (deployment === 'standalone' && parts.length > 1) {
    fail(
      `${protocol}:// takes one host; for several use ${tls ? 'rediss' : 'redis'}+sentinel:// (sentinels) or ${tls ? 'rediss' : 'redis'}+cluster:// (cluster nodes)`,
    );
  }
  if (parts.length > 1 && parts.some((p) => p === '')) fail('the host list contains an empty entry');
  const hosts = parts.map((p) => parseHost(p, protocol, form, DEFAULT_PORT[deployment]));

  const hash = tail.indexOf('#');
  const beforeHash = hash === -1 ? tail : tail.slice(0, hash);
  const q = beforeHash.indexOf('?');
  const path = (q === -1 ? beforeHash : beforeHash.slice(0, q)).replace(/^\//, '');
  const query = q === -1 ? '' : beforeHash.slice(q + 1);

  let masterName: string | undefined;
  let rawKey = path;
  if (deployment === 'sentinel') {
    const slash = path.indexOf('/');
    const rawMaster = slash === -1 ? path : path.slice(0, slash);
    rawKey = slash === -1 ? '' : path.slice(slash + 1);
    if (rawMaster === '') {
      fail(`the master name is missing; expected ${protocol}${form} (the name of "sentinel monitor NAME …")`);
    }
    masterName = decode(rawMaster, 'master name');
  }
  const key = rawKey === '' ? undefined : decode(rawKey, 'path (lock key)');

  let db = 0;
  let caPath: string | undefined;
  let sentinelUsername: string | undefined;
  let sentinelPassword: string | undefined;
  const allowed = PARAMS[deployment];
  const seen = new Set<string>();
  for (const [name, value] of queryParams(query)) {
    if (!allowed.includes(name)) {
      if (name === 'db' && deployment === 'cluster')
        fail('?db is not supported by Redis Cluster (database 0 only)');
      fail(`unknown query parameter "${name}" (supported by ${protocol}://: ${allowed.join(', ')})`);
    }
    if (seen.has(name)) fail(`the query parameter "${name}" is given twice`);
    seen.add(name);
    if (name === 'db') {
      // NOTE: ioredis would send `SELECT NaN` for a non-numeric db and crash the process; refuse it here.
      if (!/^\d{1,9}$/.test(value)) fail(`?db must be a non-negative integer, got "${value}"`);
      db = Number(value);
    } else if (name === 'ca') {
      if (!tls)
        fail(`?ca is only valid with ${base}s${deployment === 'standalone' ? '' : `+${deployment}`}://`);
      if (value === '') fail('?ca must be a file path');
      caPath = value;
    } else if (name === 'sentinel_username') {
      if (value === '') fail('?sentinel_username must not be empty');
      sentinelUsername = value;
    } else if (name === 'sentinel_password') {
      if (value === '') fail('?sentinel_password must not be empty');
      sentinelPassword = value;
    }
  }
  const common = { kind: 'redis' as const, tls, username, password, caPath, key };
  switch (deployment) {
    case 'standalone':
      return { ...common, deployment, host: hosts[0]!.host, port: hosts[0]!.port, db };
    case 'sentinel':
      return {
        ...common,
        deployment,
        sentinels: hosts,
        masterName: masterName!,
        db,
        sentinelUsername,
        sentinelPassword,
      };
    case 'cluster':
      return { ...common, deployment, nodes: hosts };
  }
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
    // NOTE: the value of a parameter whose name looks like a secret is never named in a message.
    const decodedName = decode(name.replace(/\+/g, ' '), 'query');
    return [
      decodedName,
      decode(value.replace(/\+/g, ' '), `?${decodedName.replace(/[^A-Za-z0-9_-]/g, '')} value`),
    ];
  });
}

const hostText = (h: LockUrlHost): string => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;

/**
 * A parsed lock URL as shown in messages and events: scheme, user, hosts and ports (and a Sentinel
 * master's name), with the password as `***` and without key or parameters (`redis://u:***@h:6379`,
 * `redis+sentinel://:***@s1:26379,s2:26379/mymaster`); `local:` for the local lock. Built from the parsed
 * fields, never from the raw URL, so no query secret (`sentinel_password`) can reach it.
 */
export function describeLockUrl(url: LockUrl): string {
  if (url.kind === 'local') return 'local:';
  const user = url.username === undefined ? '' : encodeURIComponent(url.username);
  const auth = url.password === undefined ? (user ? `${user}@` : '') : `${user}:***@`;
  const scheme = url.tls ? 'rediss' : 'redis';
  switch (url.deployment) {
    case 'sentinel':
      return `${scheme}+sentinel://${auth}${url.sentinels.map(hostText).join(',')}/${encodeURIComponent(url.masterName)}`;
    case 'cluster':
      return `${scheme}+cluster://${auth}${url.nodes.map(hostText).join(',')}`;
    default:
      return `${scheme}://${auth}${hostText(url)}`;
  }
}
