/**
 * Sleeps `ms`; resolves early when the `wake` function handed to `onWake` is called, rejects with
 * `signal.reason` when aborted.
 */
export function sleep(
  ms: number,
  signal: AbortSignal | undefined,
  onWake?: (wake: () => void) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
    onWake?.(done);
  });
}

/** Monotonic milliseconds (never `Date.now()`: wall-clock steps must not move lease deadlines). */
export const now = (): number => performance.now();
