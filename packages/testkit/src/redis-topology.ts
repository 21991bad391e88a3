// NOTE (size): test infrastructure, not product code: the Sentinel and Cluster topologies share
// process start-up, ports, ACL users and teardown; one file keeps their life cycles in one place.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestkitError } from './errors.js';
import { freePort, sleep } from './internal/process.js';
import {
  type RedisAclUser,
  type RedisFixture,
  type RedisFixtureOptions,
  redisConfArg,
  startRedis,
} from './redis.js';

const run = promisify(execFile);

/** Options of {@link startRedisSentinel}. */
export interface RedisSentinelOptions {
  /** Password of the data nodes' default user (also `masterauth` and the sentinels' `auth-pass`). @default random */
  password?: string;
  /** The sentinels' own `requirepass` (clients give it as `?sentinel_password=`). @default random */
  sentinelPassword?: string;
  /** ACL users of the data nodes. @default [] */
  users?: RedisAclUser[];
  /** TLS everywhere (data nodes, replication, sentinels) with the testkit's private CA. @default false */
  tls?: boolean;
  /** The monitored master's name. @default 'task-cache' */
  masterName?: string;
  /** `sentinel down-after-milliseconds`. @default 1_000 */
  downAfterMs?: number;
  /** `sentinel failover-timeout`. @default 4_000 */
  failoverTimeoutMs?: number;
  /** `maxmemory` of the data nodes (policy noeviction). @default no limit */
  maxmemory?: string;
}

/** A master, one replica and three sentinels on 127.0.0.1 (quorum 2), started by {@link startRedisSentinel}. */
export interface RedisSentinelFixture {
  readonly masterName: string;
  /** Password of the data nodes' default user. */
  readonly password: string;
  /** The sentinels' `requirepass`. */
  readonly sentinelPassword: string;
  readonly tls: boolean;
  /** The private CA's PEM file (TLS only). */
  readonly caFile: string | undefined;
  /** The two data nodes: `servers[0]` started as the master, `servers[1]` as its replica. */
  readonly servers: readonly RedisFixture[];
  /** The three sentinels. */
  readonly sentinels: readonly RedisFixture[];
  /**
   * `redis+sentinel://:PASSWORD@127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/MASTER[/key]?sentinel_password=…`
   * (`rediss+sentinel://…&ca=CAFILE` with TLS); `user` replaces the data nodes' credentials.
   */
  url(key?: string, user?: { name: string; password: string }): string;
  /** The data node the sentinels currently name as the master. */
  master(): Promise<RedisFixture>;
  /** The data node that is not the master. */
  replica(): Promise<RedisFixture>;
  /**
   * Resolves once the current master's replica reports `master_link_status:up`.
   * @param timeoutMs @default 90000 (after a failover the old master takes tens of seconds to rejoin)
   */
  waitForReplication(timeoutMs?: number): Promise<void>;
  /**
   * SIGKILLs the current master and waits until the sentinels name the other node; then starts the
   * killed node again (empty), which the sentinels turn into the new master's replica. Resolves with the
   * time from the kill until the sentinels named the new master.
   */
  failover(timeoutMs?: number): Promise<{ oldMaster: RedisFixture; newMaster: RedisFixture; ms: number }>;
  /** Stops everything; idempotent. */
  stop(): Promise<void>;
}

const random = () => randomBytes(12).toString('hex');

/**
 * Starts a master, one replica and three sentinels (`redis-sentinel`, Debian package `redis-sentinel`) on
 * 127.0.0.1 with small timeouts (down after 1 s), so a failover takes a few seconds. Resolves once the
 * replica is in sync and every sentinel knows the other two and the replica.
 */
export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelFixture> {
  const password = options.password ?? random();
  const sentinelPassword = options.sentinelPassword ?? random();
  const masterName = options.masterName ?? 'task-cache';
  const tls = options.tls === true;
  const common: RedisFixtureOptions = {
    password,
    tls,
    ...(options.users ? { users: options.users } : {}),
    ...(options.maxmemory ? { maxmemory: options.maxmemory } : {}),
  };
  const started: RedisFixture[] = [];
  const stopAll = async () => {
    await Promise.all(started.map((f) => f.stop()));
  };
  try {
    const first = await startRedis({ ...common, config: [`masterauth ${redisConfArg(password)}`] });
    started.push(first);
    const second = await startRedis({
      ...common,
      config: [`masterauth ${redisConfArg(password)}`, `replicaof 127.0.0.1 ${first.port}`],
    });
    started.push(second);
    const servers = [first, second];
    await waitFor('the replica to sync', 30_000, async () =>
      /^master_link_status:up\r?$/m.test(String(await second.command('INFO', 'replication'))),
    );
    const name = redisConfArg(masterName);
    const sentinelConfig = [
      'sentinel resolve-hostnames no',
      `sentinel monitor ${name} 127.0.0.1 ${first.port} 2`,
      `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1_000}`,
      `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 4_000}`,
      `sentinel parallel-syncs ${name} 1`,
      `sentinel auth-pass ${name} ${redisConfArg(password)}`,
      `sentinel sentinel-pass ${redisConfArg(sentinelPassword)}`,
    ];
    const sentinels: RedisFixture[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await startRedis({ password: sentinelPassword, tls, sentinel: true, config: sentinelConfig });
      started.push(s);
      sentinels.push(s);
    }
    await waitFor('the sentinels to discover each other and the replica', 30_000, async () => {
      for (const s of sentinels) {
        const fields = pairs(await s.command('SENTINEL', 'MASTER', masterName));
        if (Number(fields['num-other-sentinels']) < 2 || Number(fields['num-slaves']) < 1) return false;
      }
      return true;
    });

    /** The master port `s` names, or `undefined` when it is down, busy or names none. */
    const portNamedBy = async (s: RedisFixture): Promise<number | undefined> => {
      if (s.pid === undefined) return undefined;
      try {
        const reply = (await s.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as string[] | null;
        return reply ? Number(reply[1]) : undefined;
      } catch {
        return undefined; // a sentinel may be busy
      }
    };
    const masterPort = async (): Promise<number> => {
      for (const s of sentinels) {
        const port = await portNamedBy(s);
        if (port !== undefined) return port;
      }
      throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', 'no sentinel names a master');
    };
    const byPort = (port: number): RedisFixture => {
      const found = servers.find((s) => s.port === port);
      if (!found)
        throw new TestkitError(
          'TESTKIT_ERR_COMMAND_FAILED',
          `the sentinels name an unknown master on port ${port}`,
        );
      return found;
    };
    let stopped = false;
    const fixture: RedisSentinelFixture = {
      masterName,
      password,
      sentinelPassword,
      tls,
      caFile: first.caFile,
      servers,
      sentinels,
      url(key, user) {
        const auth = user
          ? `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`
          : `:${encodeURIComponent(password)}@`;
        const hosts = sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
        const path = `/${encodeURIComponent(masterName)}${key ? `/${key}` : ''}`;
        const query = [`sentinel_password=${encodeURIComponent(sentinelPassword)}`];
        if (first.caFile) query.push(`ca=${encodeURIComponent(first.caFile)}`);
        return `${tls ? 'rediss' : 'redis'}+sentinel://${auth}${hosts}${path}?${query.join('&')}`;
      },
      async master() {
        return byPort(await masterPort());
      },
      async replica() {
        const port = await masterPort();
        return servers.find((s) => s.port !== port)!;
      },
      // NOTE: after a failover the old master rejoins as a replica only once the sentinels see it
      // back (they poll known instances' INFO every 10 s) and it has synced: tens of seconds on a
      // loaded machine (CI once saw more than 30 s).
      async waitForReplication(timeoutMs = 90_000) {
        const replica = await fixture.replica();
        await waitFor('the replica to sync', timeoutMs, async () =>
          /^master_link_status:up\r?$/m.test(String(await replica.command('INFO', 'replication'))),
        );
      },
      async failover(timeoutMs = 30_000) {
        const oldMaster = await fixture.master();
        const t0 = performance.now();
        await oldMaster.kill();
        let newPort = oldMaster.port;
        await waitFor('the sentinels to promote the replica', timeoutMs, async () => {
          newPort = await masterPort();
          return newPort !== oldMaster.port;
        });
        const ms = performance.now() - t0;
        const newMaster = byPort(newPort);
        // NOTE: the old node comes back empty, so it must never pass for the master: it restarts
        // only once every sentinel names the new master, and as the new master's replica from its
        // first moment. An empty node back as a master could be taken for the master by a client
        // or a sentinel still catching up, and the promoted node could even be made its replica
        // and lose its data (CI saw a lease lost after the failover: a second build). The later
        // `replicaof` line of the config file wins over an earlier one.
        await waitFor('every sentinel to name the new master', timeoutMs, async () => {
          for (const sen of sentinels) {
            if (sen.pid !== undefined && (await portNamedBy(sen)) !== newPort) return false;
          }
          return true;
        });
        appendFileSync(join(oldMaster.dir, 'redis.conf'), `replicaof 127.0.0.1 ${newPort}\n`);
        await oldMaster.restart();
        return { oldMaster, newMaster, ms };
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        // Sentinels first, so that none of them reconfigures a data node while it stops.
        await Promise.all(sentinels.map((s) => s.stop()));
        await Promise.all(servers.map((s) => s.stop()));
      },
    };
    return fixture;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** Password of every node's default user (also `masterauth`). @default random */
  password?: string;
  /** ACL users of every node. @default [] */
  users?: RedisAclUser[];
  /** TLS for clients and the cluster bus, with the testkit's private CA. @default false */
  tls?: boolean;
  /** Number of masters (no replicas). @default 3 */
  masters?: number;
  /** `maxmemory` of every node (policy noeviction). @default no limit */
  maxmemory?: string;
}

/** A Redis Cluster of masters on 127.0.0.1, started by {@link startRedisCluster}. */
export interface RedisClusterFixture {
  readonly password: string;
  readonly tls: boolean;
  /** The private CA's PEM file (TLS only). */
  readonly caFile: string | undefined;
  /** The nodes (masters), each a {@link RedisFixture} (its `restart()` keeps `nodes.conf`: the node rejoins). */
  readonly nodes: readonly RedisFixture[];
  /** `redis+cluster://:PASSWORD@127.0.0.1:P1,127.0.0.1:P2,…[/key]` (`rediss+cluster://…?ca=` with TLS). */
  url(key?: string, user?: { name: string; password: string }): string;
  /** `CLUSTER KEYSLOT key`. */
  slotOf(key: string): Promise<number>;
  /** The node that serves `slot` now. */
  ownerOf(slot: number): Promise<RedisFixture>;
  /**
   * Moves `slot` with its keys to `target` the way `redis-cli --cluster reshard` does (SETSLOT IMPORTING /
   * MIGRATING, MIGRATE of every key, SETSLOT NODE on every node). Clients then get `MOVED`.
   */
  migrateSlot(slot: number, target: RedisFixture): Promise<void>;
  /** Resolves once every node reports `cluster_state:ok`. */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  /** Stops every node; idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a Redis Cluster (`cluster-enabled yes`, created with `redis-cli --cluster create … --cluster-yes`)
 * of three masters by default, each with its own random port and cluster-bus port. Resolves once every
 * node reports `cluster_state:ok`.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterFixture> {
  const password = options.password ?? random();
  const tls = options.tls === true;
  const count = options.masters ?? 3;
  if (!Number.isInteger(count) || count < 3) {
    throw new TestkitError(
      'TESTKIT_ERR_INVALID_OPTION',
      'startRedisCluster: options.masters must be an integer >= 3',
    );
  }
  const nodes: RedisFixture[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const config = [
        'cluster-enabled yes',
        'cluster-config-file nodes.conf',
        'cluster-node-timeout 2000',
        `cluster-port ${await freePort()}`,
        `masterauth ${redisConfArg(password)}`,
        ...(tls ? ['tls-cluster yes'] : []),
      ];
      nodes.push(
        await startRedis({
          password,
          tls,
          config,
          ...(options.users ? { users: options.users } : {}),
          ...(options.maxmemory ? { maxmemory: options.maxmemory } : {}),
        }),
      );
    }
    const caFile = nodes[0]!.caFile;
    const args = [
      ...(tls ? ['--tls', '--cacert', caFile!] : []),
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-yes',
    ];
    try {
      await run('redis-cli', args, { env: { ...process.env, REDISCLI_AUTH: password }, timeout: 60_000 });
    } catch (error) {
      const out = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
      throw new TestkitError(
        'TESTKIT_ERR_START_FAILED',
        `redis-cli --cluster create failed: ${out || String(error)}`,
        {
          cause: error,
        },
      );
    }
    const ids = new Map<RedisFixture, string>();
    for (const n of nodes) ids.set(n, String(await n.command('CLUSTER', 'MYID')));
    let stopped = false;
    const fixture: RedisClusterFixture = {
      password,
      tls,
      caFile,
      nodes,
      url(key, user) {
        const auth = user
          ? `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`
          : `:${encodeURIComponent(password)}@`;
        const hosts = nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
        const query = caFile ? `?ca=${encodeURIComponent(caFile)}` : '';
        return `${tls ? 'rediss' : 'redis'}+cluster://${auth}${hosts}${key ? `/${key}` : ''}${query}`;
      },
      async slotOf(key) {
        return Number(await nodes[0]!.command('CLUSTER', 'KEYSLOT', key));
      },
      async ownerOf(slot) {
        const ranges = (await nodes[0]!.command('CLUSTER', 'SLOTS')) as Array<
          [number, number, [string, number]]
        >;
        for (const [from, to, [, port]] of ranges) {
          if (slot >= from && slot <= to) {
            const owner = nodes.find((n) => n.port === Number(port));
            if (owner) return owner;
          }
        }
        throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', `no node serves slot ${slot}`);
      },
      async migrateSlot(slot, target) {
        const source = await fixture.ownerOf(slot);
        if (source === target) return;
        await target.command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids.get(source)!);
        await source.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids.get(target)!);
        for (;;) {
          const keys = (await source.command('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
          if (keys.length === 0) break;
          await source.command(
            'MIGRATE',
            '127.0.0.1',
            target.port,
            '',
            0,
            5_000,
            'AUTH',
            password,
            'KEYS',
            ...keys,
          );
        }
        // The new owner first, then the old one, then the rest (the order redis-cli uses).
        for (const n of [target, source, ...nodes.filter((n) => n !== target && n !== source)]) {
          await n.command('CLUSTER', 'SETSLOT', slot, 'NODE', ids.get(target)!);
        }
      },
      async waitUntilOk(timeoutMs = 30_000) {
        await waitFor('the cluster to be ok', timeoutMs, async () => {
          for (const n of nodes) {
            if (!/^cluster_state:ok\r?$/m.test(String(await n.command('CLUSTER', 'INFO')))) return false;
          }
          return true;
        });
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await Promise.all(nodes.map((n) => n.stop()));
      },
    };
    await fixture.waitUntilOk(60_000);
    return fixture;
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw error;
  }
}

/** `[k1, v1, k2, v2, …]` (a RESP2 map) → an object. */
function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new TestkitError('TESTKIT_ERR_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(delay);
  }
}
