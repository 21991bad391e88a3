/**
 * Benchmark of `@task-cache/lock` (run with `pnpm --filter @task-cache/lock bench`, i.e. tsx)
 * against a real redis-server on loopback started by `@task-cache/testkit`:
 *
 * 1. acquire+release: `acquireOrWait` (uncontended) + `release('built')`, sequential, BENCH_ITERATIONS
 *    times (default 2000); PING round trip as the floor.
 * 2. release → waiter wakes: a waiter (its own connection) waits on a held key; after a random hold of
 *    100–2000 ms the holder releases `built`; measured from just before `release()` until the waiter's
 *    `acquireOrWait` resolves (`peer-finished`). With release notices (default) versus polling alone
 *    (`releaseNotices: false`), both with the default backoff (100 ms doubling, capped at 2 s).
 *    BENCH_WAKE_ITERATIONS rounds each (default 25).
 *
 * Prints a Markdown table and a JSON line.
 */
import { cpus, loadavg } from 'node:os';
import type { Lock } from '@task-cache/lock';
import { connectLock } from '@task-cache/lock/redis';
import { startRedis } from '@task-cache/testkit';
import { Redis } from 'ioredis';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2000);
const WAKE_ITERATIONS = Number(process.env.BENCH_WAKE_ITERATIONS ?? 25);

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const stats = (values: number[]) => ({
  n: values.length,
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  mean: values.reduce((a, b) => a + b, 0) / values.length,
});
const fmt = (ms: number) => (ms < 10 ? ms.toFixed(3) : ms.toFixed(1));
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

const redis = await startRedis({ maxmemory: '64mb' });
const loadBefore = loadavg();
try {
  // PING floor
  const client = new Redis({ host: redis.host, port: redis.port, password: redis.password });
  client.on('error', () => {});
  const ping: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = performance.now();
    await client.ping();
    ping.push(performance.now() - t0);
  }
  client.disconnect();

  // 1. acquire + release
  const lock = await connectLock(redis.url('bench'));
  const cycle: number[] = [];
  for (let i = 0; i < 100; i++) {
    const o = await lock.acquireOrWait('warmup');
    if (o.kind === 'acquired') await o.lease.release();
  }
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = performance.now();
    const o = await lock.acquireOrWait('bench-cycle');
    if (o.kind !== 'acquired') throw new Error(`unexpected ${o.kind}`);
    await o.lease.release('built');
    cycle.push(performance.now() - t0);
  }
  await lock.close();

  // 2. release → waiter wakes
  const wake = async (releaseNotices: boolean): Promise<number[]> => {
    // Distinct connect timeouts keep the pooled connections of holder and waiter apart.
    const holder: Lock = await connectLock(redis.url('h'), { connectTimeoutMs: 5_001 });
    const waiter: Lock = await connectLock(redis.url('w'), { connectTimeoutMs: 5_002, releaseNotices });
    const out: number[] = [];
    for (let i = 0; i < WAKE_ITERATIONS; i++) {
      const key = `wake-${releaseNotices}-${i}`;
      const held = await holder.acquireOrWait(key);
      if (held.kind !== 'acquired') throw new Error(`unexpected ${held.kind}`);
      let done = false;
      const waiting = waiter.acquireOrWait(key, { isDone: () => done });
      await delay(100 + Math.random() * 1_900);
      const t0 = performance.now();
      done = true;
      await held.lease.release('built');
      const o = await waiting;
      out.push(performance.now() - t0);
      if (o.kind !== 'peer-finished') throw new Error(`unexpected ${o.kind}`);
    }
    await Promise.all([holder.close(), waiter.close()]);
    return out;
  };
  const withNotices = await wake(true);
  const polling = await wake(false);

  const rows = [
    ['PING round trip (ioredis, floor)', stats(ping)],
    ['acquire + release', stats(cycle)],
    ['release → waiter wakes, with release notice', stats(withNotices)],
    ['release → waiter wakes, polling alone', stats(polling)],
  ] as const;
  const loadAfter = loadavg();
  console.log(`| measurement | n | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|---:|`);
  for (const [name, s] of rows)
    console.log(`| ${name} | ${s.n} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.mean)} |`);
  console.log(
    `\nnode ${process.version}, ${cpus().length} × ${cpus()[0]?.model}, loadavg before ${loadBefore
      .map((l) => l.toFixed(2))
      .join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(
    JSON.stringify({ node: process.version, loadBefore, loadAfter, results: Object.fromEntries(rows) }),
  );
} finally {
  await redis.stop();
}
