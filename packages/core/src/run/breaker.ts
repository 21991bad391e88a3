/**
 * The circuit breaker of one store of one cache instance (the run's own store and each read scope
 * have their own): after `threshold` consecutive failures the store is skipped for `cooldownMs`, so
 * a dead registry costs one timeout per task, not one per operation. A success closes it. The state belongs to the cache that created it (issue 13: a
 * process-wide breaker keyed by store location let one test's outage open a later test's fresh
 * `memory://default` store).
 */

/** The breaker's view for one call, with the thresholds of that call's policy. */
export interface Breaker {
  /** `true` while open (calls to the store should be skipped). */
  isOpen(): boolean;
  success(): void;
  failure(): void;
  /**
   * Opens at once, whatever the threshold: the store did not answer in time (a black hole, a
   * slow-loris), so the next runs of this cache skip it instead of paying the same wait.
   */
  trip(): void;
}

/** A breaker state; `view` reads and updates it with a call's thresholds. */
export interface BreakerState {
  view(threshold: number, cooldownMs: number): Breaker;
}

/** A closed breaker (one per cache instance). */
export function createBreaker(now: () => number = Date.now): BreakerState {
  let failures = 0;
  let openUntil = 0;
  return {
    view: (threshold, cooldownMs) => ({
      isOpen: () => failures >= threshold && now() < openUntil,
      success: () => {
        failures = 0;
        openUntil = 0;
      },
      failure: () => {
        failures += 1;
        if (failures >= threshold) openUntil = now() + cooldownMs;
      },
      trip: () => {
        failures = Math.max(failures, threshold);
        openUntil = now() + cooldownMs;
      },
    }),
  };
}
