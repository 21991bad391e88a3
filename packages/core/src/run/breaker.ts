/**
 * A per-process circuit breaker per store location: after `threshold` consecutive store failures
 * the store is skipped for `cooldownMs`, so a dead registry costs one timeout per task, not one
 * per operation. A success closes it.
 */
interface BreakerState {
  failures: number;
  openUntil: number;
}

const states = new Map<string, BreakerState>();

/** One store's breaker, with the thresholds of the calling cache. */
export interface Breaker {
  /** `true` while open (calls to the store should be skipped). */
  isOpen(): boolean;
  success(): void;
  failure(): void;
}

/** The breaker of `location` in this process. */
export function breakerFor(location: string, threshold: number, cooldownMs: number): Breaker {
  let state = states.get(location);
  if (!state) {
    state = { failures: 0, openUntil: 0 };
    states.set(location, state);
  }
  const s = state;
  return {
    isOpen: () => s.failures >= threshold && Date.now() < s.openUntil,
    success: () => {
      s.failures = 0;
      s.openUntil = 0;
    },
    failure: () => {
      s.failures += 1;
      if (s.failures >= threshold) s.openUntil = Date.now() + cooldownMs;
    },
  };
}

/** Forgets every breaker state (tests). */
export function resetCircuitBreakers(): void {
  states.clear();
}
