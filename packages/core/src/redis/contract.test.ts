// The store contract (@task-cache/testkit) against the Redis entry store and a REAL redis-server.
import { SizeMismatchError, sha256Digest } from '@task-cache/oci';
import { type RedisFixture, seededBytes, startRedis, storeContract } from '@task-cache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from './store.js';

let redis: RedisFixture;
let raw: Redis;
let seq = 0;
beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url());
});
afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

storeContract(
  'Redis store',
  async () => {
    const prefix = `contract-${++seq}:`;
    // A cap above the contract's largest blob (3 MiB), so only the limit case meets it.
    const store = createRedisStore({ url: redis.url(), prefix, maxEntrySize: 4 * 1024 * 1024 });
    return {
      store,
      async tamper(digest: string, bytes: Uint8Array) {
        await raw.set(`${prefix}blob:${digest}`, Buffer.from(bytes));
      },
    };
  },
  { listTags: true, deleteManifest: true, maxEntrySize: true },
);

// What the contract cannot see from outside a store: how the Redis store reads a range.
describe('Redis store: ranged reads', () => {
  const descriptorOf = (bytes: Uint8Array) => ({
    mediaType: 'application/octet-stream',
    digest: sha256Digest(bytes),
    size: bytes.byteLength,
  });
  const collect = async (source: AsyncIterable<Uint8Array>) => {
    const parts: Uint8Array[] = [];
    for await (const p of source) parts.push(p);
    return Buffer.concat(parts);
  };
  /** Bytes Redis has sent to its clients so far (INFO stats). */
  const sentBytes = async () => Number(/total_net_output_bytes:(\d+)/.exec(await raw.info('stats'))?.[1]);

  it('asks Redis for the range only (GETRANGE), not the whole blob', async () => {
    const prefix = `range-${++seq}:`;
    const store = createRedisStore({ url: redis.url(), prefix, maxEntrySize: 4 * 1024 * 1024 });
    try {
      const bytes = seededBytes(42, 3 * 1024 * 1024);
      const d = descriptorOf(bytes);
      await store.pushBlob(d, bytes);
      const before = await sentBytes();
      const got = await collect(await store.fetchBlob(d, { range: { offset: 2_000_000, length: 100 } }));
      const sent = (await sentBytes()) - before;
      expect(got.equals(Buffer.from(bytes.subarray(2_000_000, 2_000_100)))).toBe(true);
      // The range and a few INFO replies, nowhere near the 3 MiB a GET would send.
      expect(sent).toBeLessThan(64 * 1024);
    } finally {
      await store.close();
    }
  });

  it('a stored value shorter than its descriptor fails the length check, not BlobUnknownError', async () => {
    const prefix = `range-${++seq}:`;
    const store = createRedisStore({ url: redis.url(), prefix });
    try {
      const bytes = seededBytes(43, 1000);
      const d = descriptorOf(bytes);
      await store.pushBlob(d, bytes);
      await raw.set(`${prefix}blob:${d.digest}`, Buffer.from(bytes.subarray(0, 900)));
      // Partly past the stored bytes, then wholly past them (GETRANGE answers "" as for no key).
      for (const range of [
        { offset: 850, length: 100 },
        { offset: 950, length: 10 },
      ]) {
        await expect(
          collect(await store.fetchBlob(d, { range })),
          JSON.stringify(range),
        ).rejects.toBeInstanceOf(SizeMismatchError);
      }
    } finally {
      await store.close();
    }
  });
});
