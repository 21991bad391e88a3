/**
 * Two tiers: a local store in front of a remote one, as one {@link OciStore} (after Bazel's
 * `--disk_cache` with `--remote_cache` and Turborepo's `--cache=local:rw,remote:r`). Reads try
 * the local tier first and fall back to the remote; a remote hit is written into the local tier
 * while the caller reads it (the bytes are teed: no second download; the local store verifies
 * them as it writes). Writes go to every writable tier; the local tier's result decides, the
 * remote's trouble is reported through `onRemoteTrouble` (core turns it into a warning).
 */
import {
  type BlobBody,
  type BlobRange,
  BlobUnknownError,
  checkBlobRange,
  type Descriptor,
  type FetchBlobOptions,
  type FetchedManifest,
  manifestReferences,
  type OciStore,
  type PushBlobOptions,
  type PushManifestOptions,
  type RegistryCapabilities,
  type RequestOptions,
} from '@task-cache/oci';
import { InvalidOptionError } from '../errors.js';

/** What a tier is used for: read and write, read only, write only, or not at all. */
export type TierMode = 'rw' | 'r' | 'w' | 'off';

/** The mode of each tier. */
export interface TierModes {
  /**
   * The local tier (the embedded default layout, bounded by `maxSize`/`maxAge`).
   * @default 'rw'
   */
  local?: TierMode;
  /**
   * The remote tier (the `store` option).
   * @default 'rw'
   */
  remote?: TierMode;
}

/** Manifests read from the remote waiting for their blobs in the local tier, at most. */
const MAX_PENDING = 64;

const MODES: readonly TierMode[] = ['rw', 'r', 'w', 'off'];

/**
 * Parses the `tiers` option: `true` (both `rw`), a string like `'local:rw,remote:r'` (a tier left
 * out is `rw`) or a {@link TierModes} object. `undefined`/`false`: one tier (the store alone).
 */
export function parseTiers(value: unknown, field = 'tiers'): Required<TierModes> | undefined {
  if (value === undefined || value === false || value === '') return undefined;
  if (value === true) return { local: 'rw', remote: 'rw' };
  const out: Required<TierModes> = { local: 'rw', remote: 'rw' };
  const set = (tier: string, mode: unknown) => {
    if (tier !== 'local' && tier !== 'remote')
      throw new InvalidOptionError(field, `unknown tier ${JSON.stringify(tier)} (local, remote)`);
    if (!MODES.includes(mode as TierMode))
      throw new InvalidOptionError(field, `mode of ${tier} must be one of ${MODES.join(', ')}`);
    out[tier] = mode as TierMode;
  };
  if (typeof value === 'string') {
    for (const part of value.split(',')) {
      const [tier, mode, extra] = part.trim().split(':');
      if (extra !== undefined || tier === undefined)
        throw new InvalidOptionError(field, 'must look like "local:rw,remote:r"');
      set(tier, mode);
    }
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [tier, mode] of Object.entries(value)) if (mode !== undefined) set(tier, mode);
    return out;
  }
  throw new InvalidOptionError(field, 'must be true, a string like "local:rw,remote:r" or { local, remote }');
}

/** Options of {@link tieredStore}. */
export interface TieredStoreOptions {
  /**
   * Mode of each tier.
   * @default { local: 'rw', remote: 'rw' }
   */
  modes?: TierModes;
  /**
   * Called when the remote tier fails a write, or a write-through into the local tier fails
   * (the operation itself goes on). Must not throw.
   * @default undefined (ignored)
   */
  onTrouble?: (tier: 'local' | 'remote', operation: string, error: unknown) => void;
}

/** A store made of a local and a remote tier (see the module's comment). */
export interface TieredStore extends OciStore {
  readonly local: OciStore;
  readonly remote: OciStore;
  /**
   * The tier whose manifest answered the last `fetchManifest(reference)` (`remote`: its blobs
   * were read from the remote, filling the local tier), or `undefined` when none did.
   */
  servedBy(reference: string): 'local' | 'remote' | undefined;
}

/** References whose serving tier is remembered, at most (the newest). */
const MAX_SERVED = 256;

/** `true` for a store made by {@link tieredStore}. */
export function isTiered(store: OciStore): store is TieredStore {
  return TIERED.has(store);
}
const TIERED = new WeakSet<OciStore>();

const readable = (m: TierMode) => m === 'rw' || m === 'r';
const writable = (m: TierMode) => m === 'rw' || m === 'w';

/**
 * A one-slot channel: `put` resolves once the reader took the chunk (so a slow local write slows
 * the tee instead of buffering the blob), `end`/`fail` finish the reader.
 */
function channel() {
  let slot: { value: Uint8Array } | { done: true } | { error: unknown } | undefined;
  let wakeReader: (() => void) | undefined;
  let wakeWriter: (() => void) | undefined;
  let closed = false;
  const iterable: AsyncIterable<Uint8Array> = {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          while (slot === undefined)
            await new Promise<void>((r) => {
              wakeReader = r;
            });
          const s = slot;
          if ('done' in s) return;
          if ('error' in s) throw s.error;
          slot = undefined;
          wakeWriter?.();
          yield s.value;
        }
      } finally {
        closed = true;
        wakeWriter?.();
      }
    },
  };
  const wait = async () => {
    while (slot !== undefined && !closed)
      await new Promise<void>((r) => {
        wakeWriter = r;
      });
  };
  return {
    iterable,
    /** `false` once the reader stopped. */
    async put(value: Uint8Array): Promise<boolean> {
      if (closed) return false;
      slot = { value };
      wakeReader?.();
      await wait();
      return !closed;
    },
    /** The reader is gone (its consumer finished or failed without reading on): `put` stops waiting. */
    close() {
      closed = true;
      wakeWriter?.();
    },
    end() {
      if (closed) return;
      slot = { done: true };
      wakeReader?.();
    },
    fail(error: unknown) {
      if (closed) return;
      slot = { error };
      wakeReader?.();
    },
  };
}

const isBlobUnknown = (e: unknown) =>
  e instanceof BlobUnknownError || (e as { code?: unknown })?.code === 'OCI_ERR_BLOB_UNKNOWN';

/** Combines `local` and `remote` into one store (see the module's comment). */
export function tieredStore(
  local: OciStore,
  remote: OciStore,
  options: TieredStoreOptions = {},
): TieredStore {
  const localMode = options.modes?.local ?? 'rw';
  const remoteMode = options.modes?.remote ?? 'rw';
  const report = (tier: 'local' | 'remote', op: string, e: unknown) => {
    try {
      options.onTrouble?.(tier, op, e);
    } catch {
      // A throwing listener must not break the build.
    }
  };
  // What the last `blobExists` learned per tier, so a push skips a tier that has the blob.
  const known = { local: new Set<string>(), remote: new Set<string>() };
  // Manifests read from the remote, written into the local tier once their blobs are there.
  const pending = new Map<
    string,
    { manifest: FetchedManifest; tag: string | undefined; needs: Set<string> }
  >();
  const inLocal = new Set<string>();
  // Blobs being copied from the remote into the local tier right now (reads teeing them, per digest).
  const copying = new Map<string, number>();
  const startCopy = (digest: string) => copying.set(digest, (copying.get(digest) ?? 0) + 1);
  const endCopy = (digest: string) => {
    const n = (copying.get(digest) ?? 1) - 1;
    if (n > 0) copying.set(digest, n);
    else copying.delete(digest);
  };
  const writeThrough = writable(localMode);
  const served = new Map<string, 'local' | 'remote'>();
  const serve = (reference: string, tier: 'local' | 'remote') => {
    served.delete(reference);
    if (served.size >= MAX_SERVED) served.delete(served.keys().next().value as string);
    served.set(reference, tier);
  };

  async function flushPending(signal?: AbortSignal) {
    for (const [key, p] of pending) {
      for (const d of p.needs) if (inLocal.has(d)) p.needs.delete(d);
      if (p.needs.size > 0) continue;
      pending.delete(key);
      try {
        const m = p.manifest;
        await local.pushManifest(m.bytes, m.descriptor.mediaType, {
          ...(p.tag !== undefined ? { tag: p.tag } : {}),
          ...(signal ? { signal } : {}),
        });
        inLocal.add(m.descriptor.digest);
      } catch (error) {
        report('local', 'pushManifest', error);
      }
    }
  }

  /**
   * Hands out `source` (the whole blob, read from the remote) while the local tier writes it.
   * With `range`, only those bytes are handed out: the pieces before it are written but not
   * handed out, and after its last byte the read goes on until the local copy is complete (or
   * stops there when the local write already failed). The caller marked the copy with
   * `startCopy`; it ends when the local write does.
   */
  async function teedBlob(
    descriptor: Descriptor,
    source: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
    range?: BlobRange,
  ): Promise<AsyncIterable<Uint8Array>> {
    const ch = channel();
    let teeing = true;
    const pushed = local
      .pushBlob(descriptor, ch.iterable, signal ? { signal } : {})
      .then(() => {
        inLocal.add(descriptor.digest);
        return flushPending(signal);
      })
      .catch((error) => {
        teeing = false;
        ch.close();
        report('local', 'pushBlob', error);
      })
      .finally(() => endCopy(descriptor.digest));
    const from = range?.offset ?? 0;
    const to = range ? range.offset + range.length : Number.POSITIVE_INFINITY;
    return {
      async *[Symbol.asyncIterator]() {
        let complete = false;
        // Bytes of the blob read so far (the offset of the next piece).
        let position = 0;
        try {
          for await (const piece of source) {
            if (teeing && !(await ch.put(piece))) teeing = false;
            if (range === undefined) {
              yield piece;
              continue;
            }
            const start = position;
            position += piece.byteLength;
            if (position > from && start < to)
              yield piece.subarray(Math.max(from - start, 0), Math.min(to, position) - start);
            // Past the range with no local copy to finish: the rest of the blob is not downloaded.
            if (position >= to && !teeing) break;
          }
          complete = true;
        } catch (error) {
          ch.fail(error);
          throw error;
        } finally {
          if (complete) ch.end();
          else ch.fail(new Error('the read of the blob stopped before its end'));
          // The local write finishes (or fails) with the caller's read.
          await pushed;
        }
      },
    };
  }

  async function writeBoth<T>(
    op: string,
    toLocal: (() => Promise<T>) | undefined,
    toRemote: (() => Promise<T>) | undefined,
  ): Promise<T | undefined> {
    // NOTE: both start together (the remote "in the background of the local"); the call returns
    // once both finished. The local result decides; remote trouble is reported, not thrown,
    // unless the remote is the only writable tier.
    const remoteDone = toRemote?.().then(
      (v) => ({ ok: true as const, v }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    let localValue: T | undefined;
    let localError: { error: unknown } | undefined;
    if (toLocal) {
      try {
        localValue = await toLocal();
      } catch (error) {
        localError = { error };
      }
    }
    const r = await remoteDone;
    if (localError) throw localError.error;
    if (r && !r.ok) {
      if (!toLocal) throw r.error;
      report('remote', op, r.error);
      return localValue;
    }
    return toLocal ? localValue : r?.v;
  }

  const replayable = (body: BlobBody) => !(typeof body === 'object' && Symbol.asyncIterator in body);

  const store: TieredStore = {
    local,
    remote,
    location: remote.location,
    servedBy: (reference) => served.get(reference),
    // The remote registry's capabilities (probed, learned, remembered per registry by the save):
    // the local tier has none to offer.
    ...(remote.probeCapabilities
      ? {
          probeCapabilities: (o?: Parameters<NonNullable<OciStore['probeCapabilities']>>[0]) =>
            remote.probeCapabilities!(o),
        }
      : {}),
    ...(remote.observedCapabilities ? { observedCapabilities: () => remote.observedCapabilities!() } : {}),
    ...(remote.assumeCapabilities
      ? { assumeCapabilities: (c: RegistryCapabilities) => remote.assumeCapabilities!(c) }
      : {}),
    ...(local.limits || remote.limits
      ? {
          limits: {
            maxEntrySize:
              Math.min(local.limits?.maxEntrySize ?? Infinity, remote.limits?.maxEntrySize ?? Infinity) ===
              Infinity
                ? undefined
                : Math.min(local.limits?.maxEntrySize ?? Infinity, remote.limits?.maxEntrySize ?? Infinity),
          },
        }
      : {}),

    async fetchManifest(reference, opts?: RequestOptions) {
      if (readable(localMode)) {
        try {
          const hit = await local.fetchManifest(reference, opts);
          if (hit) {
            serve(reference, 'local');
            return hit;
          }
        } catch (error) {
          if (!readable(remoteMode)) throw error;
          report('local', 'fetchManifest', error);
        }
      }
      if (!readable(remoteMode)) return undefined;
      const hit = await remote.fetchManifest(reference, opts);
      if (hit) serve(reference, 'remote');
      else served.delete(reference);
      if (hit && writeThrough) {
        const needs = new Set<string>();
        try {
          for (const r of manifestReferences(hit.bytes)) if (r.kind !== 'subject') needs.add(r.digest);
        } catch {
          return hit;
        }
        // NOTE: a manifest only looked up (its blobs never read) stays pending; keep the newest few.
        if (pending.size >= MAX_PENDING) pending.delete(pending.keys().next().value as string);
        pending.set(reference, {
          manifest: hit,
          tag: reference.includes(':') ? undefined : reference,
          needs,
        });
        // A manifest whose blobs the local tier has already (shared chunks) is written now.
        for (const d of needs)
          if (!inLocal.has(d) && (await local.blobExists({ digest: d }, opts).catch(() => false)))
            inLocal.add(d);
        await flushPending(opts?.signal);
      }
      return hit;
    },

    /**
     * The local tier's blob, else the remote's, copied into the local tier as it is read.
     *
     * NOTE (`range`): a local hit reads the range from the local tier. On a local miss the remote
     * is asked for the WHOLE blob, through the same tee as a whole read: the local tier gets a
     * complete copy (it stores and verifies whole blobs only), the caller gets only its range,
     * and the read goes on after the range until the copy is complete, so the caller's iteration
     * ends once the whole blob is downloaded (one piece in flight, memory stays bounded). Why not
     * the range alone: format v2 reads several ranges of one pack, and the next restore (and the
     * next ranges of this one) should be local hits; repacking keeps at least half of a reused
     * pack referenced, so the whole pack costs at most about twice the bytes read. The remote
     * read checks the size only (`contentVerified`): the local write hashes every byte anyway and
     * keeps nothing that does not match the digest, and the range needs no digest check.
     * Asked for the range alone instead: a ranged read while the blob is already being copied
     * into the local tier (format v2 reads runs of one pack concurrently: one copy, not one per
     * run), and with no writable local tier. The range is validated before either tier is asked.
     */
    async fetchBlob(descriptor, opts?: FetchBlobOptions) {
      const range = checkBlobRange(opts?.range, descriptor);
      if (readable(localMode)) {
        try {
          return await local.fetchBlob(descriptor, opts);
        } catch (error) {
          if (!readable(remoteMode)) throw error;
          if (!isBlobUnknown(error)) report('local', 'fetchBlob', error);
        }
      }
      if (!readable(remoteMode))
        throw new BlobUnknownError(`blob ${descriptor.digest} unknown to the local tier`);
      if (!writeThrough || (range !== undefined && copying.has(descriptor.digest)))
        return remote.fetchBlob(descriptor, opts);
      // Marked before the remote answers, so that concurrent ranged reads start one copy.
      startCopy(descriptor.digest);
      let source: AsyncIterable<Uint8Array>;
      try {
        if (range === undefined) source = await remote.fetchBlob(descriptor, opts);
        else {
          const { range: _range, ...whole } = opts ?? {};
          source = await remote.fetchBlob(descriptor, { ...whole, contentVerified: true });
        }
      } catch (error) {
        endCopy(descriptor.digest);
        throw error;
      }
      return teedBlob(descriptor, source, opts?.signal, range);
    },

    async blobExists(descriptor, opts) {
      // Writable tiers: the blob exists when every writable tier has it (a save then pushes it
      // to the tiers that lack it). Otherwise: when a readable tier has it.
      const tiers = (['local', 'remote'] as const).filter((t) =>
        writable(t === 'local' ? localMode : remoteMode),
      );
      const asked =
        tiers.length > 0
          ? tiers
          : (['local', 'remote'] as const).filter((t) => readable(t === 'local' ? localMode : remoteMode));
      const all = tiers.length > 0;
      let answer = all;
      for (const t of asked) {
        const s = t === 'local' ? local : remote;
        let has: boolean;
        try {
          has = await s.blobExists(descriptor, opts);
        } catch (error) {
          if (t === 'local' || !all) throw error;
          report('remote', 'blobExists', error);
          has = true; // NOTE: the remote's trouble must not make the local save push again.
        }
        if (has) known[t].add(descriptor.digest);
        else known[t].delete(descriptor.digest);
        if (all && !has) answer = false;
        if (!all && has) return true;
      }
      return answer;
    },

    async pushBlob(descriptor: Descriptor, body: BlobBody, opts?: PushBlobOptions) {
      const toLocal = writable(localMode) && !known.local.has(descriptor.digest);
      const toRemote = writable(remoteMode) && !known.remote.has(descriptor.digest);
      if (!toLocal && !toRemote) {
        if (!writable(localMode) && !writable(remoteMode)) return;
      }
      let localBody: BlobBody = body;
      let remoteBody: BlobBody = body;
      let closeLocal = () => {};
      let closeRemote = () => {};
      if (toLocal && toRemote && !replayable(body)) {
        // A read-once body feeds both tiers in lockstep.
        const a = channel();
        const b = channel();
        localBody = a.iterable;
        remoteBody = b.iterable;
        closeLocal = a.close;
        closeRemote = b.close;
        void (async () => {
          let la = true;
          let lb = true;
          try {
            for await (const piece of body as AsyncIterable<Uint8Array>) {
              const [ra, rb]: boolean[] = await Promise.all([
                la ? a.put(piece) : false,
                lb ? b.put(piece) : false,
              ]);
              la = ra === true;
              lb = rb === true;
              if (!la && !lb) break;
            }
            a.end();
            b.end();
          } catch (error) {
            a.fail(error);
            b.fail(error);
          }
        })();
      }
      await writeBoth(
        'pushBlob',
        // A tier that fails without reading the body on must not hold the other one up.
        toLocal ? () => local.pushBlob(descriptor, localBody, opts).finally(closeLocal) : undefined,
        toRemote ? () => remote.pushBlob(descriptor, remoteBody, opts).finally(closeRemote) : undefined,
      );
      if (toLocal) known.local.add(descriptor.digest);
      if (toRemote) known.remote.add(descriptor.digest);
    },

    async pushManifest(bytes: Uint8Array, mediaType: string, opts?: PushManifestOptions) {
      const d = await writeBoth(
        'pushManifest',
        writable(localMode) ? () => local.pushManifest(bytes, mediaType, opts) : undefined,
        writable(remoteMode) ? () => remote.pushManifest(bytes, mediaType, opts) : undefined,
      );
      if (d === undefined) throw new InvalidOptionError('tiers', 'no tier is writable');
      return d;
    },

    async tag(descriptor, tag, opts) {
      await writeBoth(
        'tag',
        writable(localMode) ? () => local.tag(descriptor, tag, opts) : undefined,
        writable(remoteMode) ? () => remote.tag(descriptor, tag, opts) : undefined,
      );
    },

    async close() {
      await Promise.all([local.close?.(), remote.close?.()]);
    },
  };
  // The local tier's optional capabilities (prune, markInUse, listTags…) are the composite's: the
  // bounded local store is pruned as on its own.
  for (const name of ['prune', 'markInUse', 'listTags', 'deleteManifest'] as const) {
    const fn = (local as unknown as Record<string, unknown>)[name];
    if (typeof fn === 'function')
      Object.defineProperty(store, name, {
        value: (fn as (...a: unknown[]) => unknown).bind(local),
        enumerable: true,
      });
  }
  TIERED.add(store);
  return store;
}
