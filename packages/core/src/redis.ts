/**
 * `@task-cache/core/redis`: the Redis entry store for small entries. ioredis is an optional peer
 * dependency, loaded only by this subpath (core's `redis://` store URLs import it lazily).
 */
export {
  createRedisStore,
  type RedisStore,
  RedisStoreError,
  type RedisStoreErrorCode,
  type RedisStoreOptions,
} from './redis/store.js';
