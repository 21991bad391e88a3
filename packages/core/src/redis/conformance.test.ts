/**
 * The entry conformance suite (test/conformance.ts) on the Redis entry store, against a REAL
 * redis-server, with the store's default cap (1 MiB per blob): every case of the suite except
 * the `big` ones (a 300 MB file, 200 MB of deduplicated parts), which are excluded because the
 * Redis store is for small entries — their chunks (up to 4 MiB of incompressible bytes at the
 * default chunk size) are above its cap, and the run would skip such entries anyway
 * (ENTRY_TOO_LARGE); they run on the layout and the registry. The tampering cases run.
 */
import { type RedisFixture, startRedis } from '@task-cache/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { createRedisStore, type RedisStore } from './store.js';

let redis: RedisFixture;
let raw: Redis;
const stores: RedisStore[] = [];
let seq = 0;
beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url());
});
afterAll(async () => {
  for (const store of stores) await store.close();
  raw?.disconnect();
  await redis?.stop();
});

entryConformance(
  'redis',
  async () => {
    const prefix = `conformance-${++seq}:`;
    const store = createRedisStore({ url: redis.url(), prefix });
    stores.push(store);
    return {
      store,
      tamperBlob: async (digest, bytes) => {
        await raw.set(`${prefix}blob:${digest}`, Buffer.from(bytes));
      },
      removeBlob: async (digest) => {
        await raw.del(`${prefix}blob:${digest}`);
      },
    };
  },
  { tamper: true, big: false },
);
