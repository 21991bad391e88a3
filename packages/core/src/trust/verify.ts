/**
 * A reader's check of a signed entry: the signature annotation verifies, under one of the trusted
 * keys, over the payload rebuilt from what the reader resolved and what it looked up — the key
 * (tag) it asked for, the running task, the config digest and the layer digests. An entry signed
 * for another key or task (copied or re-tagged) therefore fails, like an unsigned one.
 */
import { type KeyObject, verify } from 'node:crypto';
import type { ResolvedEntry } from '../entry/types.js';
import { SIGNATURE_ANNOTATION } from './keys.js';
import { payloadBytes } from './payload.js';

/** Why an entry is not trusted, or that it is. */
export type TrustVerdict = { trusted: true } | { trusted: false; why: string };

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** Checks `entry`, looked up as `expected.key` for `expected.task`, against `keys`. */
export function verifyEntry(
  entry: Pick<ResolvedEntry, 'config' | 'configDescriptor' | 'layers' | 'annotations'>,
  expected: { key: string; task: string },
  keys: readonly KeyObject[],
): TrustVerdict {
  const signature = entry.annotations?.[SIGNATURE_ANNOTATION];
  if (signature === undefined) return { trusted: false, why: 'the entry is not signed' };
  if (entry.config.key !== expected.key || entry.config.task !== expected.task)
    return {
      trusted: false,
      why: `the entry was saved for key ${JSON.stringify(entry.config.key)} of task ${JSON.stringify(entry.config.task)}, not this one (copied or re-tagged)`,
    };
  if (!BASE64_RE.test(signature) || signature.length > 200)
    return { trusted: false, why: 'the signature is malformed' };
  const data = payloadBytes({
    key: expected.key,
    task: expected.task,
    config: entry.configDescriptor.digest,
    layers: entry.layers.map((l) => l.digest),
  });
  const sig = Buffer.from(signature, 'base64');
  for (const key of keys) {
    try {
      if (verify(null, data, key, sig)) return { trusted: true };
    } catch {
      // A signature of the wrong length throws instead of returning false: not valid either way.
    }
  }
  return { trusted: false, why: 'the signature does not verify under any trusted key' };
}
