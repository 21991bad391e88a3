// Lua scripts. They run as legacy (flag-less) scripts on purpose: Redis then checks `maxmemory` only at
// the script's first write command that is flagged deny-oom (SET), so under `noeviction` OOM an acquire
// fails while a renewal (PEXPIRE) and a release (DEL, PUBLISH) still work.

/**
 * KEYS[1] lease key, KEYS[2] fence key; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] fence key ttl ms.
 * Returns {1, fence} or {0, pttl}. The fence is max(last + 1, server TIME in µs), so it grows across a
 * restart that lost the counter. (Doubles are exact up to 2^53; µs since 1970 stay below that until 2255.)
 */
export const ACQUIRE = `
local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not ok then return {0, redis.call('PTTL', KEYS[1])} end
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if last + 1 > fence then fence = last + 1 end
local s = string.format('%.0f', fence)
redis.call('PSETEX', KEYS[2], ARGV[3], s)
return {1, s}
`;

/** KEYS[1] lease key; ARGV[1] token, ARGV[2] ttl ms. Returns 1 if renewed, 0 if the token does not match. */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/**
 * KEYS[1] lease key; ARGV[1] token, ARGV[2] outcome, ARGV[3] channel, ARGV[4] 'SPUBLISH' (sharded pub/sub,
 * Redis Cluster >= 7) or 'PUBLISH'. Deletes the key if it holds the token; publishes the outcome when
 * deleted, and always for 'built' (the result exists either way). The publish runs under pcall: a user
 * without channel permissions must still be able to release. The channel shares the lease key's hash tag,
 * so a sharded publish stays in the script's slot.
 */
export const RELEASE = `
local deleted = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  deleted = 1
end
if deleted == 1 or ARGV[2] == 'built' then redis.pcall(ARGV[4], ARGV[3], ARGV[2]) end
return deleted
`;

/** Redis key names of one lock; all share one `{hash tag}` so the scripts also run on Redis Cluster. */
export function lockKeys(key: string): { lease: string; fence: string; channel: string } {
  // A key that already carries a non-empty hash tag (`lock:{build-3f2a}`) keeps its own name, so ACL key
  // patterns such as `~lock:*` keep matching; otherwise the whole key becomes the tag.
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  const lease = open !== -1 && close > open + 1 ? key : `{${key}}`;
  return { lease, fence: `${lease}:fence`, channel: `${lease}:released` };
}
