/**
 * Step 7: release — the held lease is released exactly once: `built` after a save (or a restore
 * of a peer's entry), `failed` otherwise, so a waiter takes over. Losing the lease during the
 * build is remembered (the save goes on: entries are content-addressed, the tag is pushed last).
 */
import type { CacheLease, LeaseOutcome } from '../types.js';

/** The lease of one run (or none). */
export interface HeldLease {
  readonly lease: CacheLease | undefined;
  /** `true` once the lease was lost (its signal fired, or it is no longer valid). */
  lost(): boolean;
  /** Looks at the lease's validity now (after the build). */
  check(): void;
  /** Releases the lease once; later calls do nothing. Never throws. */
  release(outcome: LeaseOutcome): Promise<void>;
  /** Stops watching the lease. */
  dispose(): void;
}

/** Watches `lease` (if any) until {@link HeldLease.dispose}. */
export function holdLease(lease: CacheLease | undefined): HeldLease {
  let lost = false;
  let released = false;
  const onLost = () => {
    lost = true;
  };
  lease?.signal.addEventListener('abort', onLost, { once: true });
  if (lease?.signal.aborted) lost = true;
  return {
    lease,
    lost: () => lost,
    check() {
      if (lease && !lease.isValid()) lost = true;
    },
    async release(outcome) {
      if (!lease || released) return;
      released = true;
      try {
        await lease.release(outcome);
      } catch {
        // release never throws for backend trouble; nothing more to do.
      }
    },
    dispose() {
      lease?.signal.removeEventListener('abort', onLost);
    },
  };
}
