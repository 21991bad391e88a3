// The store contract (@task-cache/testkit) against the Redis entry store and a REAL redis-server.
import { type RedisFixture, startRedis, storeContract } from '@task-cache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
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
