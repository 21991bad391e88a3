/**
 * Whether a resolved entry may be restored by this call: it must be the running task's (two task
 * names `urlsafe` maps to one key would otherwise restore each other's outputs) and, when trusted
 * keys are configured, validly signed for this key and task. A refusal is a miss with a warning.
 */
import type { ResolvedEntry } from '../entry/types.js';
import type { CallContext } from '../run/context.js';
import { verifyEntry } from './verify.js';

/** `true` when `entry` may be restored; else records the miss reason and warns. */
export function admitEntry(call: CallContext, entry: ResolvedEntry): boolean {
  const { task, key, cache } = call;
  if (entry.config.task !== task) {
    call.outcome.missReason = 'key-collision';
    call.warn(
      'KEY_COLLISION',
      `key ${key} holds an entry of task ${JSON.stringify(entry.config.task)}, not of task ${JSON.stringify(task)}: both names map to the same key; rename one of them (the entry is neither restored nor replaced)`,
    );
    return false;
  }
  if (cache.trustedKeys.length > 0) {
    const verdict = verifyEntry(entry, { key, task }, cache.trustedKeys);
    if (!verdict.trusted) {
      call.outcome.missReason = 'untrusted';
      call.warn('UNTRUSTED_ENTRY', `entry ${key} not restored: ${verdict.why}`);
      return false;
    }
  }
  return true;
}
