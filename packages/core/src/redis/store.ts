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
  ManifestBlobUnknownError,
  ManifestUnknownError,
  OciError,
  sha256Digest,
  verifyBytes,
  verifyStream,
} from '@task-cache/oci';
import { Redis, type RedisOptions } from 'ioredis';
import { TaskCacheError } from '../errors.js';

/** Codes of {@link RedisStoreError}. */
export type RedisStoreErrorCode = 'REDIS_OOM' | 'REDIS_UNAVAILABLE' | 'ENTRY_TOO_LARGE' | 'INVALID_OPTION';

/**
 * Trouble with the Redis entry store. `REDIS_OOM`: Redis refused a write (`maxmemory` reached with
 * `noeviction`); `REDIS_UNAVAILABLE`: connection or command failure; `ENTRY_TOO_LARGE`: a blob or
 * entry above `maxEntrySize`. The cached run turns each into a warning and skips the save; the
 * build's result stands. Messages never contain the password.
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
   * Largest entry (uncompressed bytes) and largest blob stored; larger saves are skipped with a
   * warning (`ENTRY_TOO_LARGE`).
   * @default 1048576 (1 MiB)
   */
  maxEntrySize?: number;
  /** Prefix of every key. @default 'task-cache:' */
  prefix?: string;
  /** Connection and command timeout of the client created from `url`, in ms. @default 5000 */
  timeoutMs?: number;
}

/** The Redis entry store: an {@link OciStore} whose `maxEntrySize` core's run honours. */
export interface RedisStore extends OciStore {
  /** The size cap (bytes); the run passes it to the save as its `maxEntrySize`. */
  readonly maxEntrySize: number;
  /** Expiry in seconds, if any. */
  readonly ttlSeconds: number | undefined;
  listTags(options?: RequestOptions): AsyncIterable<string>;
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_MAX = 1024 * 1024;

function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'redis://(invalid URL)';
  }
}

function wrap(error: unknown, what: string, location: string): never {
  if (error instanceof TaskCacheError || error instanceof OciError || (error as Error)?.name === 'AbortError')
    throw error;
  const message = (error as Error)?.message ?? String(error);
  if (/^OOM\b/.test(message))
    throw new RedisStoreError(
      'REDIS_OOM',
      `${what} refused by ${location}: Redis is out of memory (maxmemory reached); use a separate Redis for entries with maxmemory-policy volatile-ttl`,
      { cause: error },
    );
  throw new RedisStoreError(
    'REDIS_UNAVAILABLE',
    `${what} failed on ${location}: ${message.replace(/\/\/[^@/]*@/g, '//***@')}`,
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
      throw new RedisStoreError('ENTRY_TOO_LARGE', `blob larger than the ${limit}-byte cap of ${location}`);
    parts.push(part);
  }
  return Buffer.concat(parts, size);
}

/** Digests a manifest or index references (config, layers, subject, child manifests). */
function references(bytes: Uint8Array): string[] {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as {
      config?: { digest?: unknown };
      layers?: Array<{ digest?: unknown }>;
      manifests?: Array<{ digest?: unknown }>;
    };
    const out: string[] = [];
    if (typeof json.config?.digest === 'string') out.push(json.config.digest);
    for (const l of json.layers ?? []) if (typeof l.digest === 'string') out.push(l.digest);
    for (const m of json.manifests ?? []) if (typeof m.digest === 'string') out.push(`manifest:${m.digest}`);
    return out;
  } catch {
    return [];
  }
}

/**
 * An OCI store over Redis for small entries (`redis://` / `rediss://` store URLs): the same
 * entry format as the registry, every byte handed out through `@task-cache/oci`'s verifying
 * reader, keys expiring after `ttlSeconds` (refreshed on every hit), and a size cap above which
 * saves are skipped. Out-of-memory replies become {@link RedisStoreError} `REDIS_OOM`, which the
 * run reports as a warning.
 *
 * Use a Redis dedicated to entries (e.g. `maxmemory-policy volatile-ttl`), NOT the 64 MB
 * `noeviction` lock Redis of the operator guide: entries would fill it and the lock's own writes
 * would then fail with OOM.
 */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  if (typeof options !== 'object' || options === null)
    throw new RedisStoreError('INVALID_OPTION', 'createRedisStore: options must be an object');
  if (!options.url && !options.client)
    throw new RedisStoreError('INVALID_OPTION', 'createRedisStore: `url` or `client` is required');
  let ttlSeconds = options.ttlSeconds;
  let url = options.url;
  if (url) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new RedisStoreError('INVALID_OPTION', `createRedisStore: \`url\` ${redact(url)} is not a URL`, {
        cause,
      });
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
      throw new RedisStoreError(
        'INVALID_OPTION',
        'createRedisStore: `url` must start with redis:// or rediss://',
      );
    const ttl = parsed.searchParams.get('ttl');
    if (ttl !== null && ttlSeconds === undefined) ttlSeconds = Number(ttl);
    parsed.searchParams.delete('ttl');
    url = parsed.toString();
  }
  if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0))
    throw new RedisStoreError(
      'INVALID_OPTION',
      `createRedisStore: \`ttlSeconds\` must be a positive integer, got ${ttlSeconds}`,
    );
  const maxEntrySize = options.maxEntrySize ?? DEFAULT_MAX;
  if (!Number.isInteger(maxEntrySize) || maxEntrySize < 1)
    throw new RedisStoreError(
      'INVALID_OPTION',
      `createRedisStore: \`maxEntrySize\` must be a positive integer, got ${maxEntrySize}`,
    );
  const prefix = options.prefix ?? 'task-cache:';
  const timeoutMs = options.timeoutMs ?? 5000;
  const location = url ? redact(url) : 'redis (injected client)';
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
    for (const ref of references(bytes)) {
      if (ref.startsWith('manifest:'))
        multi.expire(k.manifest(ref.slice('manifest:'.length)), ttlSeconds, 'GT');
      else multi.expire(k.blob(ref), ttlSeconds, 'GT');
    }
    await multi.exec();
  };

  const store: RedisStore = {
    location,
    maxEntrySize,
    limits: { maxEntrySize },
    ttlSeconds,

    async fetchBlob(descriptor, o) {
      const bytes = await call('fetch blob', o?.signal, (r) => r.getBuffer(k.blob(descriptor.digest)));
      if (bytes === null)
        throw new BlobUnknownError(`blob ${descriptor.digest} is not in ${location}`, {
          digest: descriptor.digest,
        });
      const source = (async function* () {
        yield new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      })();
      return verifyStream(source, descriptor, { location, ...(o?.signal ? { signal: o.signal } : {}) });
    },

    async blobExists(descriptor, o) {
      return (await call('check blob', o?.signal, (r) => r.exists(k.blob(descriptor.digest)))) === 1;
    },

    async pushBlob(descriptor: Descriptor, body: BlobBody, o?: PushBlobOptions) {
      if (descriptor.size > maxEntrySize)
        throw new RedisStoreError(
          'ENTRY_TOO_LARGE',
          `blob ${descriptor.digest} (${descriptor.size} bytes) is above the ${maxEntrySize}-byte cap of ${location}`,
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
      return call('fetch manifest', o?.signal, async (r) => {
        const isDigest = reference.includes(':');
        const digest = isDigest ? reference : await r.get(k.tag(reference));
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
      const digest = sha256Digest(bytes);
      return call('push manifest', o?.signal, async (r) => {
        const refs = references(bytes);
        if (refs.length > 0) {
          const exists = await Promise.all(
            refs.map((ref) =>
              r.exists(ref.startsWith('manifest:') ? k.manifest(ref.slice('manifest:'.length)) : k.blob(ref)),
            ),
          );
          const missing = refs.filter((_, i) => exists[i] !== 1).map((ref) => ref.replace(/^manifest:/, ''));
          if (missing.length > 0)
            throw new ManifestBlobUnknownError(`manifest references blobs missing from ${location}`, {
              missingDigests: missing,
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
      let cursor = '0';
      do {
        const [next, keys] = await call('list tags', o?.signal, (r) =>
          r.scan(cursor, 'MATCH', `${prefix}tag:*`, 'COUNT', 500),
        );
        cursor = next;
        for (const key of keys) yield key.slice(`${prefix}tag:`.length);
      } while (cursor !== '0');
    },

    async deleteManifest(digest: string, o?: RequestOptions) {
      const n = await call('delete manifest', o?.signal, (r) => r.del(k.manifest(digest)));
      if (n === 0) throw new ManifestUnknownError(`manifest ${digest} is not in ${location}`, { digest });
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
