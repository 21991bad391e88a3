/** Step 1: the key — the caller's, else the tag of the store URL, else `<urlsafe(task)>-<checksum>`. */
import { checksumDetailed, type KeyInputs, type SourceDigest } from '../../key/checksum.js';
import { defaultKey, validateKey } from '../../key/urlsafe.js';
import type { CacheContext } from '../context.js';
import type { KeyOptions } from '../types.js';

/** The key of a call, and the source digests that made it (recorded in a saved entry's config). */
export interface KeyResult {
  key: string;
  files?: SourceDigest[];
  /** The key's input manifest (absent under a caller's own key or the store URL's tag). */
  inputs?: KeyInputs;
}

/** Computes the key of `o` (timing the checksum into `stats` when given). */
export async function keyStep(
  cache: CacheContext,
  o: KeyOptions,
  stats?: { checksumMs: number },
): Promise<KeyResult> {
  if (o.key !== undefined) return { key: validateKey(o.key) };
  if (cache.urlTag !== undefined) return { key: cache.urlTag };
  const t = performance.now();
  const { dir, sources, signal, task, key: _key, policy: _policy, ...extra } = o;
  const details = await checksumDetailed({ ...extra, dir, sources, ...(signal ? { signal } : {}) });
  if (stats) stats.checksumMs = performance.now() - t;
  return { key: defaultKey(task, details.checksum), files: details.files, inputs: details.inputs };
}
