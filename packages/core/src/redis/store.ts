import { classifyRedisFailure } from '@task-cache/lock';
import type {
  BlobBody,
  Descriptor,
  FetchedManifest,
  OciStore,
  PushBlobOptions,
  PushManifestOptions,
  RequestOptions,
} from '@task-cache/oci';
import {
  BlobUnknownError,
  checkBlobRange,
  ManifestBlobUnknownError,
  ManifestUnknownError,
  manifestReferences,
  OciError,
  parseDigest,
  parseManifestReference,
  type ReferencedDescriptor,
  redactUrl,
  redactUrls,
  StoreLimitError,
  type StoreLimits,
  sha256Digest,
  validateTag,
  verifyBytes,
  verifyStream,
} from '@task-cache/oci';
import { Redis, type RedisOptions } from 'ioredis';
import { safeUrlCause } from '../config/urls.js';
import { InvalidOptionError, TaskCacheError } from '../errors.js';

/** Codes of {@link RedisStoreError}. */
export type RedisStoreErrorCode = 'CACHE_ERR_REDIS_OOM' | 'CACHE_ERR_REDIS_UNAVAILABLE';

/**
 * Trouble with the Redis entry store. `CACHE_ERR_REDIS_OOM`: Redis refused a write (`maxmemory` reached with
 * `noeviction`); `CACHE_ERR_REDIS_UNAVAILABLE`: connection or command failure. (A blob above `maxEntrySize`
 * is `@task-cache/oci`'s `StoreLimitError`, as for every store that declares `limits`.) The cached
 * run turns each into a warning and skips the save; the build's result stands. Messages never
 * contain the password.
 */
export class RedisStoreError extends TaskCacheError {
  override name = 'RedisStoreError';
  declare readonly code: RedisStoreErrorCode;
  constructor(code: RedisStoreErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /**
   * `redis://[USER][:PASSWORD]@HOST[:PORT][/DB][?ttl=SECONDS]` or `rediss://…`. Use a Redis
   * dedicated to entries (`maxmemory-policy volatile-ttl`), not the lock Redis. Either `url` or
   * `client` is required.
   */
  url?: string;
  /** An ioredis client to use instead of `url` (not closed by {@link OciStore.close}). */
  client?: Redis;
  /**
   * Expiry of every key in seconds, refreshed on each hit (`?ttl=` in the URL sets it too).
   * `undefined`: no expiry (then the Redis must evict, e.g. `allkeys-lru`).
   * @default undefined
   */
  ttlSeconds?: number;
  /**
   * Largest entry (uncompressed bytes) and largest blob stored, declared as `limits.maxEntrySize`:
   * larger saves are skipped with a warning (`ENTRY_TOO_LARGE`), a larger blob is refused with
   * `StoreLimitError` before anything is written.
   * @default 1048576 (1 MiB)
   */
  maxEntrySize?: number;
  /** Prefix of every key. @default 'task-cache:' */
  prefix?: string;
  /** Connection and command timeout of the client created from `url`, in ms. @default 5000 */
  timeoutMs?: number;
}

/** The Redis entry store: an {@link OciStore} declaring its size cap in `limits`, which core's run honours. */
export interface RedisStore extends OciStore {
  /** The size cap (bytes) as the store contract declares it; the run passes it to the save. */
  readonly limits: Required<StoreLimits>;
  /** @deprecated Read `limits.maxEntrySize` (the same number). */
  readonly maxEntrySize: number;
  /** Expiry in seconds, if any. */
  readonly ttlSeconds: number | undefined;
  listTags(options?: RequestOptions): AsyncIterable<string>;
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_MAX = 1024 * 1024;

function wrap(error: unknown, what: string, location: string): never {
  if (error instanceof TaskCacheError || error instanceof OciError || (error as Error)?.name === 'AbortError')
    throw error;
  const message = (error as Error)?.message ?? String(error);
  if (classifyRedisFailure(error) === 'oom')
    throw new RedisStoreError(
      'CACHE_ERR_REDIS_OOM',
      `${what} refused by ${location}: Redis is out of memory (maxmemory reached); use a separate Redis for entries with maxmemory-policy volatile-ttl`,
      { cause: error },
    );
  throw new RedisStoreError(
    'CACHE_ERR_REDIS_UNAVAILABLE',
    `${what} failed on ${location}: ${redactUrls(message)}`,
    {
      cause: error,
    },
  );
}

async function collect(body: BlobBody, limit: number, location: string): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  const iterable = typeof body === 'function' ? body() : body;
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of iterable) {
    size += part.byteLength;
    if (size > limit)
      throw new StoreLimitError(`blob larger than the ${limit}-byte cap of ${location}`, { limit });
    parts.push(part);
  }
  return Buffer.concat(parts, size);
}

/** What a manifest references that must be stored for it (a missing subject is accepted). */
function requiredReferences(bytes: Uint8Array): ReferencedDescriptor[] {
  return manifestReferences(bytes).filter((r) => r.kind !== 'subject');
}

/**
 * An OCI store over Redis for small entries (`redis://` / `rediss://` store URLs): the same
 * entry format as the registry, every byte handed out through `@task-cache/oci`'s verifying
 * reader (a blob is one string key; a ranged read, `FetchBlobOptions.range`, is one `GETRANGE`), keys expiring after `ttlSeconds` (refreshed on every hit), and a size cap above which
 * saves are skipped. Out-of-memory replies become {@link RedisStoreError} `CACHE_ERR_REDIS_OOM`, which the
 * run reports as a warning.
 *
 * Use a Redis dedicated to entries (e.g. `maxmemory-policy volatile-ttl`), NOT the 64 MB
 * `noeviction` lock Redis of the operator guide: entries would fill it and the lock's own writes
 * would then fail with OOM.
 */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', 'createRedisStore: options must be an object');
  if (!options.url && !options.client)
    throw new InvalidOptionError('url', 'createRedisStore: `url` or `client` is required');
  let ttlSeconds = options.ttlSeconds;
  let url = options.url;
  if (url) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new InvalidOptionError('url', `createRedisStore: \`url\` ${redactUrl(url)} is not a URL`, {
        cause: safeUrlCause(cause),
      });
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
      throw new InvalidOptionError('url', 'createRedisStore: `url` must start with redis:// or rediss://');
    const ttl = parsed.searchParams.get('ttl');
    if (ttl !== null && ttlSeconds === undefined) ttlSeconds = Number(ttl);
    parsed.searchParams.delete('ttl');
    url = parsed.toString();
  }
  if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0))
    throw new InvalidOptionError(
      'ttlSeconds',
      `createRedisStore: \`ttlSeconds\` must be a positive integer, got ${ttlSeconds}`,
    );
  const maxEntrySize = options.maxEntrySize ?? DEFAULT_MAX;
  if (!Number.isInteger(maxEntrySize) || maxEntrySize < 1)
    throw new InvalidOptionError(
      'maxEntrySize',
      `createRedisStore: \`maxEntrySize\` must be a positive integer, got ${maxEntrySize}`,
    );
  const prefix = options.prefix ?? 'task-cache:';
  const timeoutMs = options.timeoutMs ?? 5000;
  const location = url ? redactUrl(url) : 'redis (injected client)';
  const owned = !options.client;
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    // NOTE: a cache must not wait for a dead Redis: fail the command, let the run warn and build.
    retryStrategy: (times) => (times > 2 ? null : 200),
    enableOfflineQueue: true,
  };
  let client: Redis | undefined = options.client;
  const redis = (): Redis => {
    if (!client) {
      const c = new Redis(url!, redisOptions);
      c.on('error', () => {
        // Errors surface on the commands; an unhandled 'error' event would crash the process.
      });
      // NOTE: once ioredis gives up reconnecting the client is dead for good; drop it so the next
      // call (a later run of a long-lived process) connects afresh when Redis is back.
      c.on('end', () => {
        if (client === c) client = undefined;
      });
      client = c;
    }
    return client;
  };

  const k = {
    blob: (digest: string) => `${prefix}blob:${digest}`,
    manifest: (digest: string) => `${prefix}manifest:${digest}`,
    tag: (tag: string) => `${prefix}tag:${tag}`,
    /** Index children are stored as manifests, everything else as blobs. */
    of: (ref: ReferencedDescriptor) =>
      ref.kind === 'manifest' ? k.manifest(ref.digest) : k.blob(ref.digest),
  };

  const call = async <T>(
    what: string,
    signal: AbortSignal | undefined,
    fn: (r: Redis) => Promise<T>,
  ): Promise<T> => {
    signal?.throwIfAborted();
    try {
      return await fn(redis());
    } catch (error) {
      signal?.throwIfAborted();
      return wrap(error, what, location);
    }
  };

  /** Refreshes the expiry of a manifest and everything it references. */
  const touch = async (r: Redis, manifestDigest: string, bytes: Uint8Array, extra: string[] = []) => {
    if (ttlSeconds === undefined) return;
    // NOTE: `GT` never shortens an expiry and leaves keys without one alone: a blob shared with
    // an entry saved under a longer TTL (or none) keeps it (EXPIRE … GT needs Redis >= 7).
    const multi = r.multi();
    multi.expire(k.manifest(manifestDigest), ttlSeconds, 'GT');
    for (const key of extra) multi.expire(key, ttlSeconds, 'GT');
    for (const ref of requiredReferences(bytes)) multi.expire(k.of(ref), ttlSeconds, 'GT');
    await multi.exec();
  };

  /** Every tag key and the digest it points at, by SCAN (no order). */
  const scanTags = async function* (
    signal: AbortSignal | undefined,
  ): AsyncGenerator<[string, string | null]> {
    let cursor = '0';
    do {
      const [next, keys] = await call('list tags', signal, (r) =>
        r.scan(cursor, 'MATCH', `${prefix}tag:*`, 'COUNT', 500),
      );
      cursor = next;
      if (keys.length === 0) continue;
      const digests = await call('list tags', signal, (r) => r.mget(keys));
      for (const [i, key] of keys.entries()) yield [key, digests[i] ?? null];
    } while (cursor !== '0');
  };

  const store: RedisStore = {
    location,
    limits: { maxEntrySize },
    maxEntrySize,
    ttlSeconds,

    async fetchBlob(descriptor, o) {
      parseDigest(descriptor.digest);
      const range = checkBlobRange(o?.range, descriptor);
      const key = k.blob(descriptor.digest);
      let bytes: Buffer | null;
      if (range === undefined) {
        bytes = await call('fetch blob', o?.signal, (r) => r.getBuffer(key));
      } else {
        // A blob is one string key: GETRANGE sends only the range (its end is inclusive).
        const end = range.offset + range.length - 1;
        bytes = await call('fetch blob', o?.signal, (r) => r.getrangeBuffer(key, range.offset, end));
        // NOTE: GETRANGE answers "" for a missing key as for a range past the end of a stored value
        // shorter than its descriptor; only then (length >= 1) ask which it is: a missing blob is
        // BlobUnknownError, a short one fails the length check below.
        if (bytes.byteLength === 0 && (await call('fetch blob', o?.signal, (r) => r.exists(key))) !== 1)
          bytes = null;
      }
      if (bytes === null)
        throw new BlobUnknownError(`blob ${descriptor.digest} is not in ${location}`, {
          digest: descriptor.digest,
        });
      const got = bytes;
      const source = (async function* () {
        yield new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
      })();
      // The digest of a part cannot be checked: a range is checked for its exact length only.
      return verifyStream(source, range ? { digest: descriptor.digest, size: range.length } : descriptor, {
        location,
        checkDigest: range === undefined && o?.contentVerified !== true,
        ...(o?.signal ? { signal: o.signal } : {}),
      });
    },

    async blobExists(descriptor, o) {
      parseDigest(descriptor.digest);
      return (await call('check blob', o?.signal, (r) => r.exists(k.blob(descriptor.digest)))) === 1;
    },

    async pushBlob(descriptor: Descriptor, body: BlobBody, o?: PushBlobOptions) {
      parseDigest(descriptor.digest);
      if (descriptor.size > maxEntrySize)
        throw new StoreLimitError(
          `blob ${descriptor.digest} (${descriptor.size} bytes) is above the ${maxEntrySize}-byte cap of ${location}`,
          { limit: maxEntrySize, size: descriptor.size, digest: descriptor.digest },
        );
      o?.signal?.throwIfAborted();
      const bytes = verifyBytes(await collect(body, maxEntrySize, location), descriptor, { location });
      await call('push blob', o?.signal, (r) =>
        ttlSeconds === undefined
          ? r.set(k.blob(descriptor.digest), Buffer.from(bytes))
          : r.set(k.blob(descriptor.digest), Buffer.from(bytes), 'EX', ttlSeconds),
      );
    },

    async fetchManifest(reference: string, o?: RequestOptions): Promise<FetchedManifest | undefined> {
      const ref = parseManifestReference(reference);
      const isDigest = ref.kind === 'digest';
      return call('fetch manifest', o?.signal, async (r) => {
        const digest = ref.kind === 'digest' ? ref.digest : await r.get(k.tag(ref.tag));
        if (!digest) return undefined;
        const [bytes, mediaType] = await Promise.all([
          r.hgetBuffer(k.manifest(digest), 'bytes'),
          r.hget(k.manifest(digest), 'mediaType'),
        ]);
        if (bytes === null || mediaType === null) return undefined;
        const verified = verifyBytes(
          new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
          {
            digest,
            size: bytes.byteLength,
          },
          { location },
        );
        // A hit keeps the entry alive: refresh the tag, the manifest and what it references.
        await touch(r, digest, verified, isDigest ? [] : [k.tag(reference)]);
        return { descriptor: { mediaType, digest, size: verified.byteLength }, bytes: verified };
      });
    },

    async pushManifest(bytes: Uint8Array, mediaType: string, o?: PushManifestOptions): Promise<Descriptor> {
      if (o?.tag !== undefined) validateTag(o.tag);
      const digest = sha256Digest(bytes);
      const refs = requiredReferences(bytes);
      return call('push manifest', o?.signal, async (r) => {
        if (refs.length > 0) {
          const exists = await Promise.all(refs.map((ref) => r.exists(k.of(ref))));
          const missing = refs.filter((_, i) => exists[i] !== 1).map((ref) => ref.digest);
          if (missing.length > 0)
            throw new ManifestBlobUnknownError(`manifest references blobs missing from ${location}`, {
              missingDigests: [...new Set(missing)],
              digest,
            });
        }
        const multi = r.multi();
        multi.hset(k.manifest(digest), 'mediaType', mediaType, 'bytes', Buffer.from(bytes));
        if (ttlSeconds !== undefined) multi.expire(k.manifest(digest), ttlSeconds);
        if (o?.tag !== undefined) {
          if (ttlSeconds === undefined) multi.set(k.tag(o.tag), digest);
          else multi.set(k.tag(o.tag), digest, 'EX', ttlSeconds);
        }
        const results = await multi.exec();
        const failed = results?.find(([err]) => err);
        if (failed) throw failed[0];
        await touch(r, digest, bytes);
        return { mediaType, digest, size: bytes.byteLength };
      });
    },

    async tag(descriptor: Descriptor, tag: string, o?: RequestOptions) {
      validateTag(tag);
      parseDigest(descriptor.digest);
      await call('tag', o?.signal, async (r) => {
        if ((await r.exists(k.manifest(descriptor.digest))) !== 1)
          throw new ManifestUnknownError(`manifest ${descriptor.digest} is not in ${location}`, {
            digest: descriptor.digest,
          });
        if (ttlSeconds === undefined) await r.set(k.tag(tag), descriptor.digest);
        else await r.set(k.tag(tag), descriptor.digest, 'EX', ttlSeconds);
      });
    },

    async *listTags(o?: RequestOptions) {
      // SCAN has no order and may repeat a key: collect, then hand out once each, sorted.
      const tags = new Set<string>();
      for await (const [key, digest] of scanTags(o?.signal)) {
        if (digest !== null) tags.add(key.slice(`${prefix}tag:`.length));
      }
      yield* [...tags].sort();
    },

    async deleteManifest(digest: string, o?: RequestOptions) {
      parseDigest(digest);
      // The tags pointing at it go with it (as in a registry); a missing manifest is not an error.
      const stale: string[] = [];
      for await (const [key, target] of scanTags(o?.signal)) if (target === digest) stale.push(key);
      await call('delete manifest', o?.signal, (r) => r.del(k.manifest(digest), ...stale));
    },

    async close() {
      if (owned && client) {
        const c = client;
        client = undefined;
        try {
          await c.quit();
        } catch {
          c.disconnect();
        }
      }
    },
  };
  return store;
}
