/**
 * What an entry's signature covers (docs/format.md §4.1): the key and the task it was saved
 * under, the config digest and every layer digest in stream order. The bytes signed are the
 * canonical JSON below, so a reader rebuilds them from the entry it resolved — nothing signed is
 * taken from the annotation itself.
 */

/** The content an entry's signature binds together. */
export interface SigningPayload {
  /** The cache key (the tag the entry is saved under). */
  key: string;
  /** The task name. */
  task: string;
  /** `sha256:` digest of the config blob. */
  config: string;
  /** `sha256:` digests of the chunk layers, in stream order (all children of an index form). */
  layers: readonly string[];
}

/** Version tag of the signed bytes (a new layout gets a new tag, never a silent change). */
export const SIGNATURE_PAYLOAD_VERSION = 'task-cache/signature/1';

/** The exact bytes signed: `{"v":…,"key":…,"task":…,"config":…,"layers":[…]}` (this key order). */
export function payloadBytes(p: SigningPayload): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: SIGNATURE_PAYLOAD_VERSION,
      key: p.key,
      task: p.task,
      config: p.config,
      layers: [...p.layers],
    }),
    'utf8',
  );
}
