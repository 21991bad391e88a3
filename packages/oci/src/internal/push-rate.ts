// A cap on blob pushes per sliding window, for registries that rate-limit layer pushes per token
// (GHCR: about 2,000 per minute). Waits are abortable; nothing global: one limiter per client.
import { sleep } from './transport/index.js';

/** Takes one push slot of the window, waiting while the window is full. */
export interface PushRateLimiter {
  /** Resolves when a push may start; rejects with the signal's reason when it fires. */
  take(signal?: AbortSignal): Promise<void>;
}

/**
 * At most `limit` pushes start within any `windowMs` (a sliding window over the start times of
 * the last `limit` pushes). `now` is injectable for tests.
 */
export function createPushRateLimiter(
  limit: number,
  windowMs = 60_000,
  now: () => number = () => performance.now(),
): PushRateLimiter {
  // Start times of the last `limit` pushes, oldest first. Callers queue in order: `tail` chains
  // them so that a burst is admitted one by one, never two on the same freed slot.
  const starts: number[] = [];
  let tail: Promise<void> = Promise.resolve();
  return {
    take(signal) {
      signal?.throwIfAborted();
      const turn = tail.then(async () => {
        for (;;) {
          signal?.throwIfAborted();
          const t = now();
          while (starts.length > 0 && t - (starts[0] as number) >= windowMs) starts.shift();
          if (starts.length < limit) {
            starts.push(t);
            return;
          }
          await sleep((starts[0] as number) + windowMs - t, signal);
        }
      });
      // NOTE: an aborted waiter must not block the queue behind it.
      tail = turn.catch(() => {});
      if (!signal) return turn;
      // Rejects at once when the signal fires, even while earlier callers still hold the queue
      // (the queued turn then finds the signal aborted and gives its place up without a slot).
      return new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        turn.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      });
    },
  };
}
