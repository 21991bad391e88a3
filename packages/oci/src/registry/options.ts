// The registry client's options: their documentation and their validation, all up front (an
// InvalidOptionError names the field), and the undici Agent they configure.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Credentials } from '../credentials.js';
import { InvalidOptionError } from '../errors.js';
import type { TransportConfig, WarningEvent } from '../internal/transport/index.js';
import { type LazyAgent, lazyAgent } from '../internal/transport/lazy-agent.js';
import { isValidRegistry } from '../reference.js';

/** Options of `createOciClient`. */
export interface OciClientOptions {
  /** Registry `host[:port]`, e.g. `harbor.example.com` or `127.0.0.1:5000`. */
  registry: string;
  /**
   * Talk plain HTTP instead of HTTPS (local registries only).
   * @default false
   */
  plainHttp?: boolean;
  /**
   * Path of a PEM CA bundle trusted in addition to the system CAs (`tls.rootCertificates`).
   * @default process.env.TASK_CACHE_OCI_CA, else system CAs only
   */
  ca?: string;
  /** PEM text of extra CA certificates, trusted in addition to the system CAs and `ca`. */
  caPem?: string;
  /**
   * Credentials. When absent: `TASK_CACHE_OCI_USER`/`TASK_CACHE_OCI_PASSWORD`, then the `auths`
   * of the auth files (see `authFiles`), else anonymous.
   * @default resolved from the environment and auth files
   */
  credentials?: Credentials;
  /**
   * Environment read for credentials, CA and auth file locations.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * Auth files to read (`null` disables them).
   * @default `$REGISTRY_AUTH_FILE`, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, then podman's `${XDG_RUNTIME_DIR}/containers/auth.json` and `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`
   */
  authFiles?: string[] | null;
  /**
   * Your own undici `Dispatcher` (e.g. a `ProxyAgent` or a `MockAgent` in unit tests). The client
   * then does not create an `Agent`, ignores `ca`/`caPem`/`connectTimeoutMs`, and never closes it.
   * @default a new keep-alive `Agent` per client
   */
  dispatcher?: Dispatcher;
  /**
   * Retries after a network error, 408, 429 or 5xx, for requests whose body can be replayed.
   * @default 3
   */
  retries?: number;
  /**
   * First backoff delay; doubles per attempt, with jitter.
   * @default 200
   */
  minRetryDelayMs?: number;
  /**
   * Cap of a backoff delay.
   * @default 10000
   */
  maxRetryDelayMs?: number;
  /**
   * Longest `Retry-After` honoured; a longer one fails the request at once with `TOOMANYREQUESTS`.
   * @default 30000
   */
  maxRetryAfterMs?: number;
  /**
   * TCP+TLS connect timeout (own `Agent` only).
   * @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * Time to wait for response headers.
   * @default 10000
   */
  headersTimeoutMs?: number;
  /**
   * Longest pause between two pieces of a response body.
   * @default 10000
   */
  bodyTimeoutMs?: number;
  /**
   * Budget of one attempt of a request, from sending it to the last byte of its answer (a
   * manifest, a token, a tag page, an error body, a `HEAD`): a server that sends one byte per
   * second never trips `bodyTimeoutMs`, it trips this. Blob transfers (a blob `GET`'s body, an
   * upload's `PATCH`/`PUT` with data) are bounded by `headersTimeoutMs` and `bodyTimeoutMs`
   * instead, and by the caller's `signal` (the cache's `timeouts`).
   * @default 30000
   */
  requestTimeoutMs?: number;
  /**
   * Largest error body read (the rest is dropped and the connection closed).
   * @default 65536 (64 KiB)
   */
  maxErrorBodyBytes?: number;
  /**
   * Largest token-server answer accepted; a larger one fails the request with `UNAUTHORIZED`.
   * @default 1048576 (1 MiB)
   */
  maxTokenBytes?: number;
  /**
   * Most tag-list pages read by `listTags` (`Link: rel=next`); more is a `REGISTRY` error.
   * @default 1000
   */
  maxTagPages?: number;
  /**
   * Concurrent blob transfers (pushes and fetches) per client.
   * @default 8
   */
  maxConcurrentTransfers?: number;
  /**
   * Blobs up to this size go up monolithically: `POST` then one `PUT` carrying the whole blob
   * (distribution-spec v1.1.1 "monolithic upload"), the fewest requests and the least registry
   * CPU. Larger blobs go up as chunked `PATCH`es of `chunkSize`. A registry (or a proxy in front
   * of it) answering a monolithic `PUT` with 413 Payload Too Large gets the blob again in chunks.
   * @default Number.MAX_SAFE_INTEGER (every blob monolithic unless the registry answers 413)
   */
  monolithicUploadMaxBytes?: number;
  /**
   * Body size of each `PATCH` of a chunked upload (each is buffered so it can be retried). Chunked
   * uploads only happen above `monolithicUploadMaxBytes` or after a 413. Registries disagree on
   * the bounds: GHCR refuses `PATCH` bodies over 4 MiB, ECR requires every part but the last to
   * be at least 5 MiB. The client keeps each body within what the registry showed it takes (its
   * `OCI-Chunk-Min-Length` header, a refused larger or smaller part: the blob goes up again once
   * with the learned size), whatever this option says.
   * @default 4194304 (4 MiB)
   */
  chunkSize?: number;
  /**
   * Most blob pushes (upload sessions, counting mounts and retries) started in any 60 s window,
   * for registries that rate-limit layer pushes per token (GHCR allows about 2,000 a minute).
   * Pushes beyond it wait (abortably) for the window to slide.
   * @default undefined (no cap)
   */
  maxBlobPushesPerMinute?: number;
  /**
   * Largest manifest accepted on fetch.
   * @default 4194304 (4 MiB)
   */
  maxManifestBytes?: number;
  /**
   * Largest tag list page requested (`n`, at most 1000).
   * @default 1000
   */
  tagPageSize?: number;
  /** Called with the text of every `Warning` header the registry sends. */
  onWarning?: (event: WarningEvent) => void;
  /**
   * `User-Agent` header.
   * @default 'task-cache-oci/0.1'
   */
  userAgent?: string;
}

/** Options after validation, with their defaults applied: the transport's settings and the client's. */
export interface ResolvedClientOptions
  extends Omit<TransportConfig, 'credentials' | 'credentialSources' | 'random'> {
  registry: string;
  env: Record<string, string | undefined>;
  maxConcurrentTransfers: number;
  chunkSize: number;
  monolithicUploadMaxBytes: number;
  maxBlobPushesPerMinute: number | undefined;
  maxManifestBytes: number;
  tagPageSize: number;
  maxErrorBodyBytes: number;
  maxTagPages: number;
  /** The Agent the client owns (closed by `close()`), if it made one. */
  ownAgent: LazyAgent | undefined;
  /** The CA certificates the client's own Agent trusts, when extra ones were given. */
  tlsCa: string[] | undefined;
}

/**
 * The `PATCH` body size of a chunked upload unless configured: 4 MiB, within GHCR's limit. A
 * registry that needs other parts says so — ECR's parts must be at least 5 MiB (but the last):
 * the client reads `OCI-Chunk-Min-Length` from the session's answer, or learns the bound from a
 * refused small part and uploads the blob again in larger parts (docs/registries.md). No host
 * name decides it.
 */
export const DEFAULT_UPLOAD_CHUNK_SIZE = 4 * 1024 * 1024;

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(`option "${name}" must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Validates every option and applies the defaults; creates the client's own Agent if needed. */
export function resolveClientOptions(options: OciClientOptions): ResolvedClientOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('createOciClient needs an options object');
  }
  const registry = options.registry;
  if (typeof registry !== 'string' || !registry || registry.includes('/')) {
    throw new InvalidOptionError(
      `option "registry" must be "host[:port]" (no scheme, no path), got ${JSON.stringify(registry)}`,
    );
  }
  if (!isValidRegistry(registry)) {
    throw new InvalidOptionError(`option "registry" is not a valid host[:port]: ${JSON.stringify(registry)}`);
  }
  const resolved = {
    registry,
    origin: `${options.plainHttp ? 'http' : 'https'}://${registry}`,
    env: options.env ?? process.env,
    retries: positiveInt('retries', options.retries, 3, 0),
    minRetryDelayMs: positiveInt('minRetryDelayMs', options.minRetryDelayMs, 200, 0),
    maxRetryDelayMs: positiveInt('maxRetryDelayMs', options.maxRetryDelayMs, 10_000, 0),
    maxRetryAfterMs: positiveInt('maxRetryAfterMs', options.maxRetryAfterMs, 30_000, 0),
    headersTimeoutMs: positiveInt('headersTimeoutMs', options.headersTimeoutMs, 10_000),
    bodyTimeoutMs: positiveInt('bodyTimeoutMs', options.bodyTimeoutMs, 10_000),
    requestTimeoutMs: positiveInt('requestTimeoutMs', options.requestTimeoutMs, 30_000),
    maxErrorBodyBytes: positiveInt('maxErrorBodyBytes', options.maxErrorBodyBytes, 64 * 1024),
    maxTokenBytes: positiveInt('maxTokenBytes', options.maxTokenBytes, 1024 * 1024),
    maxTagPages: positiveInt('maxTagPages', options.maxTagPages, 1000),
    maxConcurrentTransfers: positiveInt('maxConcurrentTransfers', options.maxConcurrentTransfers, 8),
    chunkSize: positiveInt('chunkSize', options.chunkSize, DEFAULT_UPLOAD_CHUNK_SIZE),
    monolithicUploadMaxBytes: positiveInt(
      'monolithicUploadMaxBytes',
      options.monolithicUploadMaxBytes,
      Number.MAX_SAFE_INTEGER,
      0,
    ),
    maxBlobPushesPerMinute:
      options.maxBlobPushesPerMinute === undefined
        ? undefined
        : positiveInt('maxBlobPushesPerMinute', options.maxBlobPushesPerMinute, 0),
    maxManifestBytes: positiveInt('maxManifestBytes', options.maxManifestBytes, 4 * 1024 * 1024),
    tagPageSize: positiveInt('tagPageSize', options.tagPageSize, 1000),
    userAgent: options.userAgent ?? 'task-cache-oci/0.1',
    onWarning: options.onWarning,
  };
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 5_000);
  if (resolved.tagPageSize > 1000) {
    throw new InvalidOptionError(`option "tagPageSize" must be at most 1000, got ${resolved.tagPageSize}`);
  }
  if (options.onWarning !== undefined && typeof options.onWarning !== 'function') {
    throw new InvalidOptionError('option "onWarning" must be a function');
  }
  if (options.dispatcher)
    return { ...resolved, dispatcher: options.dispatcher, ownAgent: undefined, tlsCa: undefined };
  const caFile = options.ca ?? (resolved.env.TASK_CACHE_OCI_CA || undefined);
  const extra: string[] = [];
  if (caFile !== undefined) {
    try {
      extra.push(readFileSync(caFile, 'utf8'));
    } catch (cause) {
      throw new InvalidOptionError(
        `option "ca"${options.ca === undefined ? ' (from TASK_CACHE_OCI_CA)' : ''}: cannot read CA file ${JSON.stringify(caFile)}`,
        { cause },
      );
    }
  }
  if (options.caPem) extra.push(options.caPem);
  const tlsCa = extra.length ? [...rootCertificates, ...extra] : undefined;
  const ownAgent = lazyAgent({
    connect: {
      timeout: connectTimeoutMs,
      ...(tlsCa ? { ca: tlsCa } : {}),
    },
    keepAliveTimeout: 30_000,
    connections: resolved.maxConcurrentTransfers + 8,
  });
  return { ...resolved, dispatcher: ownAgent, ownAgent, tlsCa };
}
