import { createEngineLock, type LockBackend } from './internal/engine.js';
import { createReleaseNotices } from './internal/notices.js';
import { now } from './internal/sleep.js';
import type { Lock, LockOptions } from './types.js';

/** Options of {@link createLocalLock}. */
export type LocalLockOptions = LockOptions;

/**
 * An in-process {@link Lock} with the same semantics as the Redis lock (TTL-bound leases renewed every
 * ttl/3, fencing tokens, release notices, the same wait loop). Leases are only exclusive among callers of
 * the same instance: share one instance per process.
 */
export function createLocalLock(options: LocalLockOptions = {}): Lock {
  const held = new Map<string, { token: string; expiresAt: number }>();
  const notices = createReleaseNotices();
  let lastFence = 0;
  const current = (key: string) => {
    const entry = held.get(key);
    if (entry && entry.expiresAt <= now()) {
      held.delete(key);
      return undefined;
    }
    return entry;
  };
  const backend: LockBackend = {
    async tryAcquire(key, token, ttlMs) {
      const entry = current(key);
      if (entry) return { ok: false, pttlMs: Math.max(0, Math.ceil(entry.expiresAt - now())) };
      held.set(key, { token, expiresAt: now() + ttlMs });
      // Wall clock in µs as the floor, like the Redis lock's TIME seed; +1 keeps it strictly increasing.
      lastFence = Math.max(lastFence + 1, Date.now() * 1000);
      return { ok: true, fence: lastFence };
    },
    async renew(key, token, ttlMs) {
      const entry = current(key);
      if (entry?.token !== token) return false;
      entry.expiresAt = now() + ttlMs;
      return true;
    },
    async release(key, token, outcome) {
      const entry = current(key);
      const deleted = entry?.token === token;
      if (deleted) held.delete(key);
      if (deleted || outcome === 'built') notices.publish(key, outcome);
      return deleted;
    },
    subscribe: async (key, listener) => notices.subscribe(key, listener),
    async close() {
      held.clear();
    },
  };
  return createEngineLock(backend, options);
}
