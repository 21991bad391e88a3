/**
 * `@task-cache/lock/redis`: the Redis lease lock. ioredis is an optional peer dependency of
 * `@task-cache/lock`, loaded by this subpath only: importing it without ioredis installed rejects with a
 * `LockConfigError` (reason `'dependency'`) that names the fix (`npm i ioredis`).
 */
export { connectLock, createRedisLock, type RedisLockOptions } from './redis-lock.js';
