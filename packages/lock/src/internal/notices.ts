import type { ReleaseOutcome } from '../types.js';

/** In-process release notices: listeners per lock id, for the local and the lock-file backends. */
export interface ReleaseNotices {
  /** Adds a listener for `id`; returns the function that removes it. */
  subscribe(id: string, listener: (outcome: ReleaseOutcome) => void): () => void;
  /** Tells every listener of `id`. */
  publish(id: string, outcome: ReleaseOutcome): void;
}

export function createReleaseNotices(): ReleaseNotices {
  const listeners = new Map<string, Set<(outcome: ReleaseOutcome) => void>>();
  return {
    subscribe(id, listener) {
      let set = listeners.get(id);
      if (!set) {
        set = new Set();
        listeners.set(id, set);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(id);
      };
    },
    publish(id, outcome) {
      // A copy: a listener may unsubscribe while being told.
      for (const listener of [...(listeners.get(id) ?? [])]) listener(outcome);
    },
  };
}
