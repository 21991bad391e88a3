/**
 * Explaining a miss: the current key's inputs against the task's newest previous entry — the one
 * this workspace last saved or restored (remembered under the state dir's `bases/`), else the
 * task's pointer tag `<urlsafe(task)>.latest`. Reading it costs one manifest GET and one config
 * GET per candidate, which is why a run explains its misses only when asked (`policy.explain`).
 */
import type { KeyObject } from 'node:crypto';
import type { OciStore } from '@task-cache/oci';
import { resolveEntry } from '../entry/resolve.js';
import type { ResolvedEntry } from '../entry/types.js';
import { pointerTag, recallBase } from '../internal/base.js';
import type { KeyInputs } from '../key/checksum.js';
import { verifyEntry } from '../trust/verify.js';
import { diffInputs, type Explanation } from './diff.js';
import { parseRecordedInputs } from './inputs.js';

/** What an explanation needs to know of the call. */
export interface ExplainRequest {
  task: string;
  key: string;
  dir: string;
  /** The current inputs (`undefined` under a caller's own key: nothing to compare). */
  inputs: KeyInputs | undefined;
  /** Where the bases are remembered (`<stateDir>/bases`). */
  basesDir: string;
  /** Trusted keys: an unverified previous entry is not used. */
  trustedKeys: readonly KeyObject[];
  signal?: AbortSignal | undefined;
}

async function resolveQuietly(
  store: OciStore,
  tag: string,
  signal: AbortSignal | undefined,
): Promise<ResolvedEntry | undefined> {
  try {
    return await resolveEntry(store, tag, { signal, maxEntrySize: Number.POSITIVE_INFINITY });
  } catch (error) {
    signal?.throwIfAborted();
    void error;
    return undefined;
  }
}

/** Explains why `request.key` is (or would be) a miss. Store trouble → "no previous entry". */
export async function explainKey(store: OciStore, request: ExplainRequest): Promise<Explanation> {
  const { task, key, signal } = request;
  const recalled = await recallBase(request.basesDir, request.dir, store.location, task);
  const candidates = [...new Set([recalled, pointerTag(task)].filter((t): t is string => t !== undefined))];
  let expired: string | undefined;
  for (const tag of candidates) {
    const entry = await resolveQuietly(store, tag, signal);
    if (entry === undefined) {
      if (tag === recalled) expired = tag;
      continue;
    }
    if (entry.config.task !== task) continue;
    if (
      request.trustedKeys.length > 0 &&
      !verifyEntry(entry, { key: entry.config.key, task }, request.trustedKeys).trusted
    )
      continue;
    const before = parseRecordedInputs(entry.config.inputs);
    if (before === undefined || request.inputs === undefined)
      return { task, key, previous: { status: 'not-recorded', key: entry.config.key }, changes: [] };
    return {
      task,
      key,
      previous: { status: 'found', key: entry.config.key, created: entry.config.created },
      changes: diffInputs(before, request.inputs),
    };
  }
  return {
    task,
    key,
    previous: expired !== undefined ? { status: 'expired', key: expired } : { status: 'none' },
    changes: [],
  };
}
