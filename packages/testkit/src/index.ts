export { type BlackHoleFixture, startBlackHole } from './black-hole.js';
export { RedisReplyError, TestkitError, type TestkitErrorCode } from './errors.js';
export {
  type FaultAction,
  type FaultProxy,
  type ProxyOptions,
  type SeenRequest,
  startProxy,
} from './fault-proxy.js';
export {
  type HostileMode,
  type HostileRegistry,
  type HostileRegistryOptions,
  startHostileRegistry,
} from './hostile-registry.js';
export {
  hostileTar,
  type TarEndRecord,
  type TarEntryRecord,
  type TarGnuLongRecord,
  type TarNumber,
  type TarPaxRecord,
  type TarRawRecord,
  type TarRecord,
  tarDir,
  tarEnd,
  tarFile,
  tarSymlink,
} from './hostile-tar.js';
export { type SimpleRequestOptions, type SimpleResponse, simpleRequest } from './http.js';
export {
  ALLOWLISTED_MEDIA_TYPES,
  QUIRK_PROFILES,
  type QuirkProfile,
  type QuirkProxy,
  type QuirkProxyOptions,
  type QuirkRefusal,
  startQuirkProxy,
} from './quirk-proxy.js';
export {
  type RedisAclUser,
  type RedisFixture,
  type RedisFixtureOptions,
  redisConfArg,
  startRedis,
} from './redis.js';
export {
  type RedisClusterFixture,
  type RedisClusterOptions,
  type RedisSentinelFixture,
  type RedisSentinelOptions,
  startRedisCluster,
  startRedisSentinel,
} from './redis-topology.js';
export {
  type RegistryAction,
  type RegistryFixture,
  type RegistryFixtureOptions,
  type RegistryMode,
  type RegistryUser,
  startRegistry,
  type TokenServerInfo,
} from './registry.js';
export { seededBytes, seededDigest, seededStream } from './seeded.js';
export { type StoreCapabilities, type StoreFixture, storeContract } from './store-contract.js';
