export { RedisReplyError, TestkitError, type TestkitErrorCode } from './errors.js';
export { type RedisAclUser, type RedisFixture, type RedisFixtureOptions, startRedis } from './redis.js';
