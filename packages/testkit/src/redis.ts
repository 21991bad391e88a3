import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestkitError } from './errors.js';
import {
  freePort,
  makeTempDir,
  removeTempDir,
  spawnTracked,
  type TrackedProcess,
  terminate,
  waitUntil,
} from './internal/process.js';
import { sendCommand } from './internal/resp.js';
import { testPki } from './internal/tls.js';

/** An ACL user created in the Redis fixture (`ACL SETUSER name on >password <rules>`). */
export interface RedisAclUser {
  /** ACL user name. */
  name: string;
  /** The user's password. */
  password: string;
  /** ACL rules, space separated, e.g. `'~allowed:* +@all'`. */
  rules: string;
}

/** Options of {@link startRedis}. */
export interface RedisFixtureOptions {
  /**
   * `requirepass` of the default user. `null` → no password (the default user needs no AUTH).
   * @default a random 32-character hex password
   */
  password?: string | null;
  /**
   * Extra ACL users (written to the config file, so they survive {@link RedisFixture.restart}).
   * @default []
   */
  users?: RedisAclUser[];
  /**
   * `maxmemory`, e.g. `'64mb'`; the policy is always `noeviction`.
   * @default no limit
   */
  maxmemory?: string;
  /**
   * TLS only (`port 0`, `tls-port`): the server certificate of the testkit's private CA (`127.0.0.1`),
   * clients are not asked for certificates. {@link RedisFixture.url} then gives `rediss://…?ca=CAFILE`.
   * @default false
   */
  tls?: boolean;
  /**
   * Extra `redis.conf` lines, written as given (e.g. `cluster-enabled yes`, `replicaof 127.0.0.1 6380`).
   * Quote arguments with {@link redisConfArg}.
   * @default []
   */
  config?: readonly string[];
  /**
   * Run `redis-sentinel` instead of `redis-server` (the config lines then hold the `sentinel …`
   * directives); sentinels rewrite their config file, which lives in the fixture's temp dir.
   * @default false
   */
  sentinel?: boolean;
}

/** A running `redis-server` on 127.0.0.1 (no persistence, temp dir as `dir`). */
export interface RedisFixture {
  /** Always `'127.0.0.1'`. */
  readonly host: string;
  /** Random free port (kept across {@link RedisFixture.restart}). */
  readonly port: number;
  /** Password of the default user, `undefined` when started with `password: null`. */
  readonly password: string | undefined;
  /** PID of the current redis-server process (changes on restart). */
  readonly pid: number;
  /** Whether the server speaks TLS only. */
  readonly tls: boolean;
  /** The private CA's PEM file that signed the server certificate (TLS only). */
  readonly caFile: string | undefined;
  /** The private CA's certificate, PEM (TLS only). */
  readonly caPem: string | undefined;
  /** The server's temp dir (its config file, and `nodes.conf` of a cluster node). */
  readonly dir: string;
  /**
   * `redis://:PASSWORD@127.0.0.1:PORT/path` (password percent-encoded); with `user`,
   * `redis://NAME:PASSWORD@...`. With TLS: `rediss://…/path?ca=CAFILE` (percent-encoded).
   */
  url(path?: string, user?: { name: string; password: string }): string;
  /** Runs one command on a fresh connection authenticated as the default user; error replies reject with `RedisReplyError`. */
  command(...args: Array<string | number>): Promise<unknown>;
  /**
   * Runs one command on a fresh connection authenticated as `auth` (`null` → no AUTH at all),
   * e.g. to observe `WRONGPASS` / `NOAUTH` or an ACL user's permissions.
   */
  commandAs(
    auth: { name?: string; password: string } | null,
    ...args: Array<string | number>
  ): Promise<unknown>;
  /** SIGKILL, waits for the exit. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port, empty, with the same password and users (kills it first if running). */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing until {@link RedisFixture.resume}. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /**
   * `CONFIG SET maxmemory` just below `used_memory` so that writes fail with `OOM` while reads
   * keep working (the policy is noeviction, so this is deterministic).
   */
  forceOom(): Promise<void>;
  /** Undoes {@link RedisFixture.forceOom}: restores the configured `maxmemory`. */
  clearOom(): Promise<void>;
  /** Terminates the server and removes its temp dir; idempotent. */
  stop(): Promise<void>;
}

/** Quotes one redis.conf argument (sdssplitargs syntax): everything non-alphanumeric as `\xHH`. */
export const redisConfArg = (value: string): string =>
  `"${[...Buffer.from(value, 'utf8')]
    .map((b) =>
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
        ? String.fromCharCode(b)
        : `\\x${b.toString(16).padStart(2, '0')}`,
    )
    .join('')}"`;

/**
 * Signals are delivered asynchronously; spin (briefly, synchronously) until /proc shows the
 * process in the wanted state, so that pause()/resume() have taken effect when they return.
 */
function waitForState(pid: number, ok: (state: string) => boolean): void {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    let state: string | undefined;
    try {
      state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    } catch {
      return; // no /proc (not Linux) or the process is gone
    }
    if (state === undefined || ok(state)) return;
  }
}

/** Margin by which {@link RedisFixture.forceOom} sets maxmemory below used_memory. */
const OOM_MARGIN = 256 * 1024;

/**
 * Starts a real `redis-server` (Debian package `redis-server`) on 127.0.0.1 with a random
 * free port: no persistence (`save ""`, `appendonly no`), `maxmemory-policy noeviction`, its
 * `dir` in a temp dir. Resolves once it answers PING.
 */
export async function startRedis(options: RedisFixtureOptions = {}): Promise<RedisFixture> {
  const password =
    options.password === null ? undefined : (options.password ?? randomBytes(16).toString('hex'));
  if (password === '')
    throw new TestkitError('TESTKIT_ERR_INVALID_OPTION', 'startRedis: options.password must not be empty');
  for (const [i, user] of (options.users ?? []).entries()) {
    if (!user.name || /\s/.test(user.name)) {
      throw new TestkitError(
        'TESTKIT_ERR_INVALID_OPTION',
        `startRedis: options.users[${i}].name must be a non-empty word`,
      );
    }
  }
  const host = '127.0.0.1';
  const tls = options.tls === true;
  const sentinel = options.sentinel === true;
  const pki = tls ? await testPki() : undefined;
  const dir = makeTempDir(sentinel ? 'sentinel' : 'redis');
  const confFile = join(dir, sentinel ? 'sentinel.conf' : 'redis.conf');
  const maxmemory = options.maxmemory ?? '0';

  const lines = [
    'bind 127.0.0.1',
    'protected-mode no',
    'daemonize no',
    `dir ${redisConfArg(dir)}`,
    'logfile ""',
    'loglevel warning',
  ];
  if (!sentinel) {
    lines.push(
      'save ""',
      'appendonly no',
      `maxmemory ${redisConfArg(maxmemory)}`,
      'maxmemory-policy noeviction',
    );
  }
  if (pki) {
    lines.push(
      `tls-cert-file ${redisConfArg(pki.serverCertFile)}`,
      `tls-key-file ${redisConfArg(pki.serverKeyFile)}`,
      `tls-ca-cert-file ${redisConfArg(pki.caFile)}`,
      'tls-auth-clients no',
      'tls-replication yes',
    );
  }
  lines.push(...(options.config ?? []));
  if (password !== undefined) lines.push(`requirepass ${redisConfArg(password)}`);
  for (const user of options.users ?? []) {
    const rules = user.rules.split(/\s+/).filter(Boolean);
    lines.push(
      [
        'user',
        redisConfArg(user.name),
        'on',
        redisConfArg(`>${user.password}`),
        ...rules.map(redisConfArg),
      ].join(' '),
    );
  }
  const tlsCa = pki?.caPem;

  let port = 0;
  let proc: TrackedProcess | undefined;
  let stopped = false;

  const launch = async (fixedPort: boolean) => {
    // A port found free may be taken before redis binds it; retry with another one.
    for (let attempt = 0; ; attempt++) {
      if (!fixedPort) port = await freePort();
      // The port goes into the config file: a sentinel rewrites that file and keeps what it holds.
      const portLines = tls ? ['port 0', `tls-port ${port}`] : [`port ${port}`];
      // A restart keeps the file (and what a sentinel wrote into it); the port is the same.
      if (!fixedPort) writeFileSync(confFile, `${[...lines, ...portLines].join('\n')}\n`, { mode: 0o600 });
      const name = sentinel ? 'redis-sentinel' : 'redis-server';
      const p = await spawnTracked(name, name, [confFile], { cwd: dir });
      try {
        await waitUntil(`redis-server on ${host}:${port}`, p, async () => {
          // NOTE: match the PID, not just PONG: when two fixtures race for one port, the loser
          // must not mistake the winner's server for its own.
          const info = String(await sendCommand({ host, port, password, tlsCa }, ['INFO', 'server']));
          return new RegExp(`^process_id:${p.pid}\\r?$`, 'm').test(info);
        });
        proc = p;
        return;
      } catch (error) {
        await terminate(p, 'SIGKILL');
        if (fixedPort || attempt >= 4 || !/Address already in use/i.test(p.output())) throw error;
      }
    }
  };

  try {
    await launch(false);
  } catch (error) {
    removeTempDir(dir);
    throw error;
  }

  const running = (): TrackedProcess => {
    if (!proc || proc.hasExited()) {
      throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', `redis-server on ${host}:${port} is not running`);
    }
    return proc;
  };

  const fixture: RedisFixture = {
    host,
    get port() {
      return port;
    },
    password,
    tls,
    caFile: pki?.caFile,
    caPem: pki?.caPem,
    dir,
    get pid() {
      if (!proc) throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', 'redis-server has no process');
      return proc.pid;
    },
    url(path, user) {
      const auth = user
        ? `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`
        : password !== undefined
          ? `:${encodeURIComponent(password)}@`
          : '';
      const suffix = path === undefined || path === '' ? '' : path.startsWith('/') ? path : `/${path}`;
      if (!pki) return `redis://${auth}${host}:${port}${suffix}`;
      return `rediss://${auth}${host}:${port}${suffix}?ca=${encodeURIComponent(pki.caFile)}`;
    },
    command(...args) {
      return sendCommand({ host, port, password, tlsCa }, args);
    },
    commandAs(auth, ...args) {
      return sendCommand({ host, port, username: auth?.name, password: auth?.password, tlsCa }, args);
    },
    async kill() {
      if (proc) await terminate(proc, 'SIGKILL');
    },
    async restart() {
      if (stopped)
        throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', 'redis fixture was stopped; cannot restart');
      if (proc) await terminate(proc, 'SIGKILL');
      await launch(true);
    },
    pause() {
      const p = running();
      p.child.kill('SIGSTOP');
      waitForState(p.pid, (state) => state === 'T');
    },
    resume() {
      const p = running();
      p.child.kill('SIGCONT');
      waitForState(p.pid, (state) => state !== 'T');
    },
    async forceOom() {
      running();
      const info = String(await fixture.command('INFO', 'memory'));
      const match = /^used_memory:(\d+)/m.exec(info);
      if (!match)
        throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', 'INFO memory has no used_memory field');
      const limit = Math.max(1, Number(match[1]) - OOM_MARGIN);
      await fixture.command('CONFIG', 'SET', 'maxmemory', limit);
    },
    async clearOom() {
      await fixture.command('CONFIG', 'SET', 'maxmemory', maxmemory);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (proc) await terminate(proc, 'SIGTERM');
      removeTempDir(dir);
    },
  };
  return fixture;
}
