/**
 * Pushing one save's blobs: at most `concurrency` transfers at once, an existence check before
 * each upload (always, or adaptively thinned out, see `SaveEntryOptions.existenceChecks`), and
 * the digests known to be in the store skipped altogether.
 */
import type { BlobBody, Descriptor } from '@task-cache/oci';
import { createSlotPool } from '../workers/slots.js';
import type { SaveSettings } from './save-options.js';
import type { EntryWriter } from './types.js';

/** Adaptive existence checks: misses in a row before thinning out, then one check in N. */
const ADAPTIVE_MISSES = 8;
const ADAPTIVE_PROBE_EVERY = 16;

/** The blob pusher of one save attempt. */
export interface BlobPushing {
  /**
   * Makes sure the store has `desc` (`body` its bytes): `true` when it was uploaded, `false`
   * when it was known or found to be there.
   */
  ensure(desc: Descriptor, body: BlobBody, signal?: AbortSignal): Promise<boolean>;
  /** Compressed bytes uploaded so far. */
  readonly bytesPushed: number;
}

/** A pusher for one save attempt; `known` (digests in the store) is shared across attempts. */
export function createBlobPusher(
  store: EntryWriter,
  o: Pick<SaveSettings, 'concurrency' | 'existenceChecks' | 'mountFrom'>,
  known: Set<string>,
): BlobPushing {
  const transfers = createSlotPool(o.concurrency, 0);
  let bytesPushed = 0;
  // Misses in a row, and chunks pushed unchecked since checks were thinned out.
  let misses = 0;
  let unchecked = 0;
  const shouldCheck = () => {
    if (o.existenceChecks === 'always' || misses < ADAPTIVE_MISSES) return true;
    return ++unchecked % ADAPTIVE_PROBE_EVERY === 0;
  };
  const checkAndPush = async (desc: Descriptor, body: BlobBody, signal?: AbortSignal): Promise<boolean> => {
    if (known.has(desc.digest)) return false;
    if (shouldCheck()) {
      if (await store.blobExists(desc, { signal })) {
        known.add(desc.digest);
        misses = 0;
        return false;
      }
      misses++;
    }
    // NOTE: every digest pushed here was computed by this save from these exact bytes (codec
    // worker, or sha256 of the config): the client need not hash them again; the store still does.
    await store.pushBlob(
      desc,
      body,
      o.mountFrom.length > 0
        ? { signal, mountFrom: o.mountFrom, digestVerified: true }
        : { signal, digestVerified: true },
    );
    known.add(desc.digest);
    bytesPushed += desc.size;
    return true;
  };
  return {
    async ensure(desc, body, signal) {
      if (known.has(desc.digest)) return false;
      const permit = await transfers.acquire(signal);
      try {
        return await checkAndPush(desc, body, signal);
      } finally {
        permit.release();
      }
    },
    get bytesPushed() {
      return bytesPushed;
    },
  };
}
