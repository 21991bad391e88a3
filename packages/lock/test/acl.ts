/**
 * The ACL rules docs/server-setup.md documents for the lock's own user (tls-acl.integration.test.ts checks
 * that the page holds them verbatim; the deployment suites run with a user limited to them). Keys: the
 * lock's lease, fence and channel names, `{KEY}…` (a key without its own hash tag) or `lock:{…}…`.
 */
export const LOCK_ACL_RULES =
  'resetkeys resetchannels ~{lock:* ~lock:{* &{lock:* &lock:{* -@all +ping +quit +evalsha +eval +get +set +pttl +time +psetex +pexpire +del +publish +subscribe +unsubscribe';

/** Sentinel: one more command, `WAIT` (an acquire waits for one replica). */
export const LOCK_ACL_RULES_SENTINEL = `${LOCK_ACL_RULES} +wait`;

/** Cluster: sharded pub/sub, the slot map, the capability check, ASK redirections. */
export const LOCK_ACL_RULES_CLUSTER = `${LOCK_ACL_RULES} +spublish +ssubscribe +sunsubscribe +cluster|slots +cluster|info +command|info +asking`;

/** The lock user of the tests. */
export const LOCK_USER = { name: 'task-cache-lock', password: 'Lock-User-Secret-7' };
