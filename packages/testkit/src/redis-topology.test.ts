import { afterAll, describe, expect, it } from 'vitest';
import { startBlackHole } from './black-hole.js';
import { startRedis } from './redis.js';
import { startRedisCluster, startRedisSentinel } from './redis-topology.js';

const stops: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(stops.map((s) => s()));
});

describe('redis topologies (issue 18)', () => {
  it('TLS only: the plaintext port is off, the CA-signed TLS port answers; url() is rediss://…?ca=', async () => {
    const redis = await startRedis({ tls: true });
    stops.push(() => redis.stop());
    expect(redis.tls).toBe(true);
    expect(await redis.command('PING')).toBe('PONG');
    expect(redis.url('k')).toMatch(/^rediss:\/\/:[0-9a-f]+@127\.0\.0\.1:\d+\/k\?ca=%2F/);
    expect(String(await redis.command('CONFIG', 'GET', 'port'))).toContain('0');
  });

  it('sentinel: master + replica + 3 sentinels; a failover promotes the replica and the old master comes back as replica', async () => {
    const s = await startRedisSentinel();
    stops.push(() => s.stop());
    const master = await s.master();
    expect(master).toBe(s.servers[0]);
    expect(s.url('k')).toMatch(
      /^redis\+sentinel:\/\/:[0-9a-f]+@127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\/task-cache\/k\?sentinel_password=/,
    );
    await master.command('SET', 'x', '1');
    const { newMaster, ms } = await s.failover();
    console.log(`sentinel failover took ${Math.round(ms)} ms`);
    expect(newMaster).toBe(s.servers[1]);
    expect(await newMaster.command('GET', 'x')).toBe('1');
    await s.waitForReplication();
    expect(await s.replica()).toBe(s.servers[0]);
  });

  it('cluster: three masters cover all slots; a slot migration moves its keys and answers MOVED at the old owner', async () => {
    const c = await startRedisCluster();
    stops.push(() => c.stop());
    const slot = await c.slotOf('{k}');
    const owner = await c.ownerOf(slot);
    await owner.command('SET', '{k}', 'v');
    const target = c.nodes.find((n) => n !== owner)!;
    await c.migrateSlot(slot, target);
    expect(await c.ownerOf(slot)).toBe(target);
    expect(await target.command('GET', '{k}')).toBe('v');
    await expect(owner.command('GET', '{k}')).rejects.toMatchObject({ prefix: 'MOVED' });
  });

  it('black hole: accepts, reads, never answers', async () => {
    const hole = await startBlackHole();
    stops.push(() => hole.close());
    const { connect } = await import('node:net');
    const socket = connect({ host: hole.host, port: hole.port });
    await new Promise((r) => socket.once('connect', r));
    socket.write('PING\r\n');
    let answered = false;
    socket.on('data', () => {
      answered = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    expect(hole.accepted).toBe(1);
    expect(hole.received).toBe(6);
    socket.destroy();
  });
});
