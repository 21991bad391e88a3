/**
 * The option schema of the cached run: `createCache()` options, a run's `policy`, and the task
 * options of `run()`/`key()`/`lookup()`/`restore()`/`save()`. Everything is checked where it is
 * passed (construction, or the entry of a call) with the rules the entry functions use
 * (../internal/validate.ts `SHARED_OPTIONS`), so nothing that would fail later is accepted:
 * every mistake is an {@link InvalidOptionError} naming the field, never a warning at run time.
 */

import type { KeyObject } from 'node:crypto';
import type { OciStore } from '@task-cache/oci';
import { type LockUrl, parseLockOption } from '../config/lock-url.js';
import { parseStoreUrl, redactUrl, type StoreUrl } from '../config/urls.js';
import { ENTRY_FORMAT_VERSION } from '../entry/format.js';
import { checkLimits, type ResolvedLimits } from '../entry/resolve.js';
import { CacheConfigError, InvalidOptionError } from '../errors.js';
import type { CacheEventListener } from '../events/types.js';
import {
  checkBoolean,
  checkFunction,
  checkGenerates,
  checkInt,
  checkSize,
  checkSources,
  checkString,
  SHARED_OPTIONS,
} from '../internal/validate.js';
import { validateKey } from '../key/urlsafe.js';
import { type LocalBounds, resolveBounds } from '../tier/bounds.js';
import { parseTiers, type TierModes } from '../tier/tiered.js';
import type {
  BuildFunction,
  CacheLimits,
  CacheLock,
  CacheOptions,
  CachePolicy,
  CacheTimeouts,
  RunOptions,
} from './types.js';

/** {@link CacheTimeouts} with every default filled in. */
export type ResolvedTimeouts = Required<CacheTimeouts>;
/** {@link CacheLimits} with every default filled in. */
export type ResolvedCacheLimits = Required<CacheLimits>;

/** The default {@link CacheTimeouts}: a dead registry costs ≤ 30 s per run in total. */
export const TIMEOUT_DEFAULTS: ResolvedTimeouts = Object.freeze({
  lookupMs: 10_000,
  saveMs: 600_000,
  restoreMs: 600_000,
  connectMs: 5_000,
  headersMs: 10_000,
  bodyIdleMs: 10_000,
  requestMs: 30_000,
});

const REGISTRY_LIMIT_DEFAULTS = {
  maxTokenBytes: 1024 * 1024,
  maxErrorBodyBytes: 64 * 1024,
  maxTagPages: 1000,
};

function checkObject(field: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null) throw new InvalidOptionError(field, 'must be an object');
  return v as Record<string, unknown>;
}

function positiveFields<T extends Record<string, number>>(field: string, v: unknown, defaults: T): T {
  const o = checkObject(field, v);
  const known = Object.keys(defaults);
  for (const k of Object.keys(o)) {
    if (!known.includes(k))
      throw new InvalidOptionError(`${field}.${k}`, `unknown field (known: ${known.join(', ')})`);
  }
  const out: Record<string, number> = {};
  for (const k of known) {
    const value = o[k];
    out[k] = defaults[k]!;
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
      throw new InvalidOptionError(`${field}.${k}`, `must be a positive integer, got ${String(value)}`);
    out[k] = value;
  }
  return out as T;
}

/** Validates `timeouts` (positive integers, known fields) and fills in the defaults. */
export function checkTimeouts(v: unknown): ResolvedTimeouts {
  return positiveFields('timeouts', v, TIMEOUT_DEFAULTS);
}

/** Validates `limits` (positive integers, known fields) and fills in the defaults. */
export function checkCacheLimits(v: unknown): ResolvedCacheLimits {
  const entry: ResolvedLimits = checkLimits(undefined);
  return positiveFields('limits', v, { ...entry, ...REGISTRY_LIMIT_DEFAULTS });
}

import { loadSigningKey, loadTrustedKeys } from '../trust/keys.js';

/**
 * A policy with every default filled in; `readOnly: 'auto'` is decided (a boolean), with the
 * reason when the environment made the run read-only.
 */
export type ResolvedPolicy = Required<Omit<CachePolicy, 'shouldRestore' | 'shouldSave' | 'readOnly'>> &
  Pick<CachePolicy, 'shouldRestore' | 'shouldSave'> & {
    readOnly: boolean;
    /** Why `readOnly: 'auto'` made this run read-only (a fork's pull request), if it did. */
    readOnlyReason?: string;
  };

type PolicyRules = {
  [K in keyof CachePolicy]-?: (field: string, value: unknown) => CachePolicy[K];
};

// NOTE: defaults live in the rules (applied by `resolvePolicy`), so `parsePolicy` keeps only
// the fields the caller set: a run's policy overrides exactly what it names.
const POLICY: PolicyRules = {
  readOnly: (f, v) => {
    if (v === undefined || v === 'auto') return 'auto';
    if (typeof v !== 'boolean')
      throw new InvalidOptionError(f, `must be a boolean or 'auto', got ${JSON.stringify(v)}`);
    return v;
  },
  explain: (f, v) => checkBoolean(f, v, false),
  force: (f, v) => checkBoolean(f, v, false),
  maxEntrySize: (f, v) => SHARED_OPTIONS.maxEntrySize(f, v, Number.POSITIVE_INFINITY),
  lockWaitTimeoutMs: (f, v) => checkSize(f, v, 600_000),
  concurrency: SHARED_OPTIONS.concurrency,
  compressionLevel: SHARED_OPTIONS.compressionLevel,
  formatVersion: (f, v) => checkInt(f, v, ENTRY_FORMAT_VERSION, 1, 2) as 1 | 2,
  strict: (f, v) => checkBoolean(f, v, false),
  circuitBreakerThreshold: (f, v) => checkInt(f, v, 3, 1, 2 ** 31 - 1),
  circuitBreakerCooldownMs: (f, v) => checkSize(f, v, 60_000),
  shouldRestore: (f, v) => checkFunction<NonNullable<CachePolicy['shouldRestore']>>(f, v),
  shouldSave: (f, v) => checkFunction<NonNullable<CachePolicy['shouldSave']>>(f, v),
};
const POLICY_FIELDS = Object.keys(POLICY) as (keyof CachePolicy)[];

/** Every policy field at its default (`readOnly` still `'auto'`). */
export const POLICY_DEFAULTS = Object.fromEntries(
  POLICY_FIELDS.map((k) => [k, (POLICY[k] as (f: string, v: unknown) => unknown)(k, undefined)]),
) as Omit<ResolvedPolicy, 'readOnly'> & { readOnly: boolean | 'auto' };

/**
 * The policy fields `source` sets, validated (`prefix` names where they were passed, e.g.
 * `policy.` for a run's overrides). Other members of `source` are ignored.
 */
export function parsePolicy(source: CachePolicy, prefix = ''): CachePolicy {
  const out: Record<string, unknown> = {};
  for (const k of POLICY_FIELDS) {
    const v = source[k];
    if (v !== undefined) out[k] = (POLICY[k] as (f: string, v: unknown) => unknown)(`${prefix}${k}`, v);
  }
  return out as CachePolicy;
}

/**
 * The defaults, overridden by the cache's policy, overridden by a call's (all validated).
 * `readOnly: 'auto'` becomes `true` when `untrusted` (the reason the environment runs untrusted
 * code, see `detectUntrustedContext`) is set, else `false`.
 */
export function resolvePolicy(base: CachePolicy, override?: CachePolicy, untrusted?: string): ResolvedPolicy {
  const merged = { ...POLICY_DEFAULTS, ...base, ...override };
  if (merged.readOnly !== 'auto') return merged as ResolvedPolicy;
  return {
    ...merged,
    readOnly: untrusted !== undefined,
    ...(untrusted !== undefined ? { readOnlyReason: untrusted } : {}),
  } as ResolvedPolicy;
}

/** Where the cache's entries live: a parsed URL (opened on first use) or the caller's store. */
export type StoreSetting = { url: StoreUrl } | { object: OciStore };
/** The cache's lock: a parsed URL (opened on first use), the caller's lock, or none. */
export type LockSetting = { url: LockUrl } | { object: CacheLock } | { none: true };

/** `createCache()` options, validated and normalized. */
export interface CacheSettings {
  env: Record<string, string | undefined>;
  enabled: boolean;
  onEvent: CacheEventListener | undefined;
  /** The `stateDir` option as given (the default is derived from `env` by the context). */
  stateDir: string | undefined;
  store: StoreSetting;
  lock: LockSetting;
  /** The policy fields set on `createCache()`. */
  policy: CachePolicy;
  timeouts: ResolvedTimeouts;
  limits: ResolvedCacheLimits;
  /** Stores read, in order, after `store` misses (never written). */
  readScopes: StoreSetting[];
  /** The signing key (option, else `TASK_CACHE_SIGNING_KEY`), if any. */
  signingKey: KeyObject | undefined;
  /** The trusted keys (option, else `TASK_CACHE_TRUSTED_KEYS`); empty: every entry is restored. */
  trustedKeys: KeyObject[];
  /** Bounds of the local store (`maxSize`, `maxAge`, `pruneIntervalMs`, or their env). */
  bounds: LocalBounds;
  /** The tiers (`tiers` option, else `TASK_CACHE_TIERS`); `undefined`: `store` alone. */
  tiers: Required<TierModes> | undefined;
}

const STORE_METHODS = [
  'fetchManifest',
  'fetchBlob',
  'blobExists',
  'pushBlob',
  'pushManifest',
  'tag',
] as const;

/**
 * Parses a URL option: configuration errors pass through; anything else a parser throws (a raw
 * `URIError` for a bad percent-escape, another package's error) becomes an
 * {@link InvalidOptionError} naming the option, with the original as `cause`.
 */
function parseUrlOption<T>(field: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof CacheConfigError) throw error;
    const why = error instanceof Error ? error.message : String(error);
    throw new InvalidOptionError(field, `not a valid URL: ${redactUrl(why)}`, { cause: error });
  }
}

function storeSetting(store: unknown): StoreSetting {
  if (store === undefined || typeof store === 'string')
    return { url: parseUrlOption('store', () => parseStoreUrl(store ?? '')) };
  if (typeof store === 'object' && store !== null) {
    const s = store as Record<string, unknown>;
    const missing = STORE_METHODS.filter((m) => typeof s[m] !== 'function');
    if (missing.length === 0 && typeof s.location === 'string') return { object: store as OciStore };
    throw new InvalidOptionError(
      'store',
      `an OciStore needs a \`location\` string and the methods ${STORE_METHODS.join(', ')}${missing.length > 0 ? ` (missing: ${missing.join(', ')})` : ''}`,
    );
  }
  throw new InvalidOptionError('store', 'must be a store URL or an OciStore');
}

function lockSetting(lock: unknown): LockSetting {
  if (lock === false) return { none: true };
  if (lock === undefined || typeof lock === 'string')
    return { url: parseUrlOption('lock', () => parseLockOption(lock ?? '', 'createCache')) };
  if (typeof lock === 'object' && lock !== null && typeof (lock as CacheLock).acquireOrWait === 'function')
    return { object: lock as CacheLock };
  throw new InvalidOptionError('lock', 'must be a lock URL, a lock object (with acquireOrWait) or false');
}

/** Validates every `createCache()` option (URLs are parsed here, nothing is opened). */
export function parseCacheOptions(options: unknown): CacheSettings {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', 'createCache: options must be an object');
  const o = options as CacheOptions;
  if (o.env !== undefined && (typeof o.env !== 'object' || o.env === null))
    throw new InvalidOptionError('env', 'must be an object of environment variables');
  return {
    policy: parsePolicy(o),
    env: o.env ?? process.env,
    enabled: checkBoolean('enabled', o.enabled, true),
    onEvent: checkFunction<CacheEventListener>('onEvent', o.onEvent),
    stateDir: o.stateDir === undefined ? undefined : checkString('stateDir', o.stateDir),
    store: storeSetting(o.store),
    lock: lockSetting(o.lock),
    timeouts: checkTimeouts(o.timeouts),
    limits: checkCacheLimits(o.limits),
    readScopes: readScopeSettings(o.readScopes),
    ...keySettings(o, o.env ?? process.env),
    bounds: resolveBounds(o, o.env ?? process.env),
    tiers:
      o.tiers !== undefined
        ? parseTiers(o.tiers)
        : parseTiers((o.env ?? process.env).TASK_CACHE_TIERS?.trim() || undefined, 'TASK_CACHE_TIERS'),
  };
}

function readScopeSettings(scopes: unknown): StoreSetting[] {
  if (scopes === undefined) return [];
  if (!Array.isArray(scopes))
    throw new InvalidOptionError('readScopes', 'must be an array of store URLs or OciStores');
  return scopes.map((s, i) => {
    if (s === '' || s === undefined)
      throw new InvalidOptionError(`readScopes[${i}]`, 'must be a store URL or an OciStore, not empty');
    try {
      return storeSetting(s);
    } catch (error) {
      if (error instanceof InvalidOptionError)
        throw new InvalidOptionError(
          `readScopes[${i}]`,
          error.message.replace(/^invalid option "store": /, ''),
          {
            cause: error,
          },
        );
      throw error;
    }
  });
}

/** The signing and trusted keys: the options, else the environment (empty values ignored). */
function keySettings(
  o: CacheOptions,
  env: Record<string, string | undefined>,
): Pick<CacheSettings, 'signingKey' | 'trustedKeys'> {
  const envSigning = env.TASK_CACHE_SIGNING_KEY?.trim() ? env.TASK_CACHE_SIGNING_KEY : undefined;
  const envTrusted = env.TASK_CACHE_TRUSTED_KEYS?.trim() ? env.TASK_CACHE_TRUSTED_KEYS : undefined;
  const signingKey =
    o.signingKey !== undefined
      ? loadSigningKey('signingKey', o.signingKey)
      : envSigning !== undefined
        ? loadSigningKey('TASK_CACHE_SIGNING_KEY', envSigning)
        : undefined;
  const trustedKeys =
    o.trustedKeys !== undefined
      ? loadTrustedKeys('trustedKeys', o.trustedKeys)
      : envTrusted !== undefined
        ? loadTrustedKeys('TASK_CACHE_TRUSTED_KEYS', envTrusted)
        : [];
  return { signingKey, trustedKeys };
}

/** What the task options of every call need (`key()` and `lookup()` need no `generates`). */
export interface TaskOptions {
  task: string;
  dir: string;
  sources: readonly string[];
  generates?: readonly string[];
  allowBroadGenerates?: boolean;
  key?: string;
  policy?: CachePolicy;
  signal?: AbortSignal;
}

/**
 * Checks the task options of a call at its entry; returns the call's validated policy
 * overrides. `sources` and `generates` follow the entry functions' rules (relative globs, no
 * `..`; no `generates` glob matching the whole task directory or `.git` unless
 * `allowBroadGenerates`), so a mistake is refused before anything runs.
 */
export function checkTaskOptions(options: unknown, where: string, needGenerates: boolean): CachePolicy {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', `${where}: options must be an object`);
  const o = options as TaskOptions;
  if (typeof o.task !== 'string' || o.task === '')
    throw new InvalidOptionError('task', "must be a non-empty string (the task's name)");
  if (typeof o.dir !== 'string' || o.dir === '')
    throw new InvalidOptionError('dir', "must be the task's directory");
  checkSources(o.sources);
  const allowBroad = checkBoolean('allowBroadGenerates', o.allowBroadGenerates, false);
  if (needGenerates) checkGenerates(o.generates, { allowBroad });
  if (o.key !== undefined) validateKey(o.key);
  if (o.policy === undefined) return {};
  if (typeof o.policy !== 'object' || o.policy === null)
    throw new InvalidOptionError('policy', 'must be an object');
  return parsePolicy(o.policy, 'policy.');
}

/** Checks `run()`'s arguments; returns the run's validated policy overrides. */
export function checkRunOptions(options: RunOptions, build: BuildFunction<unknown>): CachePolicy {
  const policy = checkTaskOptions(options, 'run', true);
  if (typeof build !== 'function') throw new InvalidOptionError('build', 'must be a function');
  const { lockKey } = options;
  if (lockKey !== undefined && (typeof lockKey !== 'string' || lockKey === ''))
    throw new InvalidOptionError('lockKey', 'must be a non-empty string');
  if (options.fallback !== undefined && options.fallback !== 'latest')
    throw new InvalidOptionError(
      'fallback',
      `must be 'latest' or absent, got ${JSON.stringify(options.fallback)}`,
    );
  return policy;
}
