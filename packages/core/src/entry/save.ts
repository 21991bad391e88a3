/**
 * Save: outputs → normalized tar → FastCDC chunks → zstd per chunk → sha256 → exists? → push,
 * streaming with bounded memory (at most `concurrency` chunks in flight). Push order: chunks,
 * config, child manifests, then the manifest or index carrying the tag — the tag is the commit.
 * The steps: options (./save-options.ts), the chunk pipeline (./save-chunks.ts) pushing through
 * the blob pusher (./save-push.ts), the commit (./save-commit.ts).
 */
import { stat } from 'node:fs/promises';
import { type Descriptor, ManifestBlobUnknownError, ManifestInvalidError, OciError } from '@task-cache/oci';
import { asCacheFsError, type CacheFsError, InvalidOptionError } from '../errors.js';
import { type BaseEntry, loadBase, pointerTag, recallBase, rememberBase } from '../internal/base.js';
import { chunkParams } from '../internal/chunk.js';
import { knownDigests } from '../internal/known.js';
import {
  CAPABILITIES_TTL_MS,
  FORM_REFUSAL_TTL_MS,
  type RegistryState,
  recallRegistry,
  registryOf,
  rememberRegistry,
} from '../internal/registry-state.js';
import type { EntryForm } from './format.js';
import { packRule } from './pack-spool.js';
import { pushChunks } from './save-chunks.js';
import { commitEntry } from './save-commit.js';
import { type SaveSettings, saveSettings } from './save-options.js';
import { pushPacks } from './save-packs.js';
import { createBlobPusher } from './save-push.js';
import type { EntryWriter, SaveEntry, SaveEntryOptions, SaveEntryResult } from './types.js';

/** Attempts of the whole push when the store answers `MANIFEST_BLOB_UNKNOWN`. */
const MAX_ATTEMPTS = 3;

/**
 * Below this many layers per manifest a refusal is not blamed on the layer count: the layer cap
 * is halved after a refusal (in both forms) only while the biggest manifest holds more.
 */
const MIN_ADAPTIVE_LAYER_CAP = 32;

type Attempt = Omit<SaveEntryResult, 'durationMs'> & {
  mediaType: string;
  size: number;
  /** A blob of the entry, for a capability probe's `Range` request. */
  probeBlob?: Descriptor;
  /** The layer cap the registry took after refusing a bigger manifest (remembered). */
  maxLayers?: number;
};

/**
 * `true` when a registry refused a manifest for its media types: `400 MANIFEST_INVALID` (GitLab:
 * "unknown media type", Quay without general OCI support) or `415 Unsupported Media Type`.
 */
export function isFormRefusal(err: unknown): err is OciError {
  return err instanceof ManifestInvalidError || (err instanceof OciError && err.statusCode === 415);
}

/**
 * Saves the outputs of `options.dir` matching `options.generates` as a chunk-deduplicated
 * entry tagged `options.tag` (format: docs/format.md). Chunks already in the store are not
 * uploaded again. The tag is pushed last, so a failure or an abort leaves no visible entry.
 *
 * @throws {InvalidOptionError} for bad options; {@link EntryTooLargeError} above `maxEntrySize`;
 * `EntryOutputsError` for outputs an entry cannot hold; {@link CacheFsError} when reading the
 * outputs fails (EACCES, EIO, …); store errors (`OciError`) as they come.
 */
export const saveEntry: SaveEntry = (store, options) =>
  saveEntryInner(store, options).catch((err: unknown) => {
    throw asCacheFsError(err, 'save');
  });

const saveEntryInner: SaveEntry = async (store, options) => {
  const started = performance.now();
  const o = saveSettings(options);
  const signal = options.signal;
  signal?.throwIfAborted();
  const dirStat = await stat(o.dir).catch(() => undefined);
  if (!dirStat?.isDirectory())
    throw new InvalidOptionError('dir', `${JSON.stringify(o.dir)} is not a directory`);
  const known = knownDigests(store);
  const base =
    o.base === false
      ? undefined
      : await loadBase(
          store,
          o.base !== undefined
            ? [o.base]
            : [await recallBase(o.stateDir, o.dir, store.location, o.task), pointerTag(o.task)],
          signal,
        );
  // The form: `compat` when asked for, or when this registry refused the standard form before
  // (remembered in the state dir); `auto` falls back to `compat` at the first refusal.
  const remembered = await recallRegistry(o.stateDir, store.location);
  const refused = remembered?.refused !== undefined;
  // What earlier runs learned from this registry's answers: upload limits, mounts, the layer cap.
  const learned = remembered?.capabilities?.values ?? {};
  if (store.assumeCapabilities !== undefined) {
    try {
      store.assumeCapabilities(learned);
    } catch {
      // A store that cannot take them learns again from the answers.
    }
  }
  // A remembered cap below the adaptive floor was never learned here: ignored (a tampered file).
  const layerCap =
    typeof learned.maxLayers === 'number' &&
    Number.isSafeInteger(learned.maxLayers) &&
    learned.maxLayers >= MIN_ADAPTIVE_LAYER_CAP
      ? Math.min(o.layerCap, learned.maxLayers)
      : o.layerCap;
  const form: FormChoice =
    o.format === 'auto'
      ? { form: refused ? 'compat' : 'standard', fallback: !refused }
      : { form: o.format, fallback: false };
  let result: Attempt;
  for (let attempt = 1; ; attempt++) {
    try {
      // NOTE: a retry after MANIFEST_BLOB_UNKNOWN drops the base: one of its chunks may be the
      // blob the store lost, and only a fresh check finds out which.
      result = await saveOnce(
        store,
        { ...o, layerCap },
        known,
        options,
        attempt === 1 ? base : undefined,
        form,
      );
      break;
    } catch (err) {
      if (!(err instanceof ManifestBlobUnknownError) || attempt >= MAX_ATTEMPTS) throw err;
      // The store lost blobs we believed it had: forget them (all of them when it did not say
      // which) and run the pipeline again, which checks and re-pushes what is missing.
      const missing = err.missingDigests ?? [];
      if (missing.length > 0) for (const d of missing) known.delete(d);
      else known.clear();
    }
  }
  // The entry is committed. Moving the pointer and remembering the base are best effort: the
  // next save merely finds no base (and compresses everything) if they fail.
  if (o.pointer) {
    await store
      .tag({ mediaType: result.mediaType, digest: result.digest, size: result.size }, pointerTag(o.task), {
        signal,
      })
      .catch(() => {});
  }
  await rememberBase(o.stateDir, o.dir, store.location, o.task, o.tag);
  if (form.refusedBy !== undefined) {
    // Remembered only once the compatible form was stored: a manifest refused in both forms is
    // a real error, not a rule of this registry.
    const at = new Date();
    await rememberRegistry(o.stateDir, store.location, {
      refused: {
        form: 'standard',
        code: form.refusedBy,
        at: at.toISOString(),
        until: new Date(at.getTime() + FORM_REFUSAL_TTL_MS).toISOString(),
      },
    });
    try {
      options.onFallback?.({
        registry: registryOf(store.location ?? ''),
        from: 'standard',
        to: 'compat',
        code: form.refusedBy,
      });
    } catch {
      // A throwing listener must not fail a committed save.
    }
  }
  await probeOnce(store, o, remembered, result, form, signal);
  const { mediaType: _m, size: _s, probeBlob: _p, ...pub } = result;
  return { ...pub, durationMs: performance.now() - started };
};

/**
 * After a committed save, on the first use of a registry (or once its record expired, or after a
 * refusal): asks a registry store what it supports with reads only, and remembers the answers
 * with the form it took, for 24 hours. Best effort: never fails the save (an abort still rejects).
 */
async function probeOnce(
  store: EntryWriter,
  o: SaveSettings,
  remembered: RegistryState | undefined,
  result: Attempt,
  form: FormChoice,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (o.stateDir === false) return;
  // What this save's answers showed (upload form and limits, mounts, a layer cap).
  const observed: Record<string, boolean | number> = {
    ...(store.observedCapabilities?.() as Record<string, boolean | number> | undefined),
    ...(result.maxLayers !== undefined ? { maxLayers: result.maxLayers } : {}),
  };
  const known = remembered?.capabilities;
  if (known !== undefined && form.refusedBy === undefined) {
    // Probed within the day: record only what the answers added or changed, same expiry.
    const values = { ...known.values, ...observed };
    if (Object.entries(values).some(([k, v]) => known.values[k] !== v))
      await rememberRegistry(o.stateDir, store.location, { capabilities: { ...known, values } });
    return;
  }
  if (store.probeCapabilities === undefined && Object.keys(observed).length === 0) return;
  let values: Record<string, boolean | number> = { ...known?.values, ...observed };
  try {
    if (store.probeCapabilities !== undefined)
      values = {
        ...values,
        ...(await store.probeCapabilities({
          ...(result.probeBlob ? { blob: result.probeBlob } : {}),
          ...(signal ? { signal } : {}),
        })),
      };
  } catch {
    signal?.throwIfAborted();
  }
  // What the save itself showed: the form the registry took.
  if (form.refusedBy !== undefined) values.standardForm = false;
  else if (form.form === 'standard') values.standardForm = true;
  const at = new Date();
  await rememberRegistry(o.stateDir, store.location, {
    capabilities: {
      values,
      at: at.toISOString(),
      until: new Date(at.getTime() + CAPABILITIES_TTL_MS).toISOString(),
    },
  });
}

/** The form of this save; `refusedBy` is set when the registry refused the standard form. */
interface FormChoice {
  form: EntryForm;
  /** Retry in the compatible form at a refusal of the standard one. */
  fallback: boolean;
  refusedBy?: string;
}

async function saveOnce(
  store: EntryWriter,
  o: SaveSettings,
  known: Set<string>,
  options: SaveEntryOptions,
  base: BaseEntry | undefined,
  choice: FormChoice,
): Promise<Attempt> {
  const { signal } = options;
  const params = chunkParams(o.avgChunkSize);
  const pusher = createBlobPusher(store, o, known);
  // The compatible form holds version 1 entries only (docs/format.md §11.5).
  const push = (version: 1 | 2) =>
    version === 2
      ? pushPacks(
          store,
          o,
          params,
          pusher,
          base,
          options.onProgress,
          signal,
          packRule(store.limits?.maxEntrySize),
        )
      : pushChunks(o, params, pusher, base, options.onProgress, signal);
  let pushed = await push(choice.form === 'compat' ? 1 : o.formatVersion);
  const commit = (form: EntryForm, layerCap: number) =>
    commitEntry(store, { ...o, layerCap }, params, pusher, pushed, form, signal);
  let committed: Awaited<ReturnType<typeof commitEntry>> | undefined;
  let maxLayers: number | undefined;
  try {
    committed = await commit(choice.form, o.layerCap);
  } catch (err) {
    if (!isFormRefusal(err)) throw err;
    if (choice.form === 'standard' && choice.fallback) {
      // Version 1 chunks are stored already: only the config and the manifests differ between the
      // forms. Version 2 packs are not a version 1 entry: the chunks go up again as chunk layers.
      try {
        if (pushed.version !== 1) pushed = await push(1);
        committed = await commit('compat', o.layerCap);
        choice.form = 'compat';
        choice.refusedBy = err.registryCode ?? err.code;
      } catch (again) {
        if (!isFormRefusal(again)) throw again;
      }
    }
    // Refused in every form it may take: the layer count may be what the registry refuses (ECR
    // takes at most ~500 per manifest). Halve the cap — an index of smaller manifests — while the
    // biggest manifest is large; the cap that is taken is remembered for this registry.
    let cap = Math.min(o.layerCap, pushed.layers.length);
    while (committed === undefined && cap > MIN_ADAPTIVE_LAYER_CAP) {
      cap = Math.max(MIN_ADAPTIVE_LAYER_CAP, Math.ceil(cap / 2));
      try {
        committed = await commit(choice.form, cap);
        maxLayers = cap;
      } catch (again) {
        if (!isFormRefusal(again)) throw again;
      }
    }
    if (committed === undefined) throw err;
  }
  const { top, manifestBytes } = committed;
  const probeBlob = pushed.layers[0];
  return {
    ...(probeBlob ? { probeBlob } : {}),
    ...(maxLayers !== undefined ? { maxLayers } : {}),
    form: choice.form,
    digest: top.digest,
    mediaType: top.mediaType,
    size: top.size,
    formatVersion: pushed.version,
    chunksTotal: pushed.chunks.length,
    blobsTotal: pushed.layers.length,
    chunksPushed: pushed.chunksPushed,
    bytesTotal: pushed.bytesTotal,
    bytesPushed: pusher.bytesPushed + manifestBytes,
    files: pushed.files,
  };
}
