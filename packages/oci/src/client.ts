/**
 * The OCI distribution client (distribution-spec v1.1.1,
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md) on undici 7.
 *
 * `createOciClient(options)` gives a client for one registry with one keep-alive `Agent`;
 * `client.repository(name)` gives an {@link OciRepository} (an {@link OciStore}).
 * `createOciBackend({ url: 'oci://host/repo' })` does both from a reference.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { type Credentials, type ResolveCredentialsOptions, resolveCredentials } from './credentials.js';
import { isDigest, parseDigest, sha256Digest } from './digest.js';
import {
  BlobUnknownError,
  DeniedError,
  InvalidOptionError,
  ManifestInvalidError,
  ManifestUnknownError,
  OciError,
  RegistryError,
  SizeInvalidError,
  SizeMismatchError,
  UnauthorizedError,
  UnsupportedError,
} from './errors.js';
import { parseLinkNext, parseRetryAfter } from './internal/headers.js';
import { errorFromResponse } from './internal/response-error.js';
import { Semaphore } from './internal/semaphore.js';
import {
  isReplayable,
  isTransientError,
  type RequestBody,
  type Response,
  sleep,
  Transport,
  type WarningEvent,
  wrapNetworkError,
} from './internal/transport.js';
import { type OciReference, parseReference, validateRepository, validateTag } from './reference.js';
import type {
  BlobBody,
  Descriptor,
  FetchedManifest,
  OciStore,
  PushBlobOptions,
  PushManifestOptions,
  RequestOptions,
} from './types.js';
import { verifyBytes, verifyStream } from './verify.js';

export type { WarningEvent } from './internal/transport.js';

/** OCI image manifest media type (image-spec v1.1.1). */
export const MEDIA_TYPE_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** OCI image index media type (image-spec v1.1.1). */
export const MEDIA_TYPE_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';

const MANIFEST_ACCEPT = [
  MEDIA_TYPE_IMAGE_MANIFEST,
  MEDIA_TYPE_IMAGE_INDEX,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** Options of {@link createOciClient}. */
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
   * Credentials. When absent: `TASK_CACHE_OCI_USER`/`TASK_CACHE_OCI_PASSWORD`, then docker/podman
   * `config.json` `auths`, else anonymous.
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
   * @default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, then `${XDG_RUNTIME_DIR}/containers/auth.json`
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
   * @default 10000
   */
  connectTimeoutMs?: number;
  /**
   * Time to wait for response headers.
   * @default 60000
   */
  headersTimeoutMs?: number;
  /**
   * Longest pause between two pieces of a response body.
   * @default 30000
   */
  bodyTimeoutMs?: number;
  /**
   * Concurrent blob transfers (pushes and fetches) per client.
   * @default 8
   */
  maxConcurrentTransfers?: number;
  /**
   * Blobs larger than this go up as chunked `PATCH` uploads of this size (each chunk is buffered
   * so it can be retried); smaller ones as one monolithic `PUT`.
   * @default 8388608 (8 MiB)
   */
  chunkSize?: number;
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

/** Options of {@link createOciBackend}: a reference plus client options. */
export interface OciBackendOptions extends Omit<OciClientOptions, 'registry' | 'plainHttp'> {
  /**
   * `oci://HOST[:PORT]/REPO[:TAG|@DIGEST][?ca=PATH&plain-http=true]`; the store is bound to REPO
   * (a tag or digest in it is kept in `reference` for the caller).
   */
  url: string;
  /**
   * Overrides `?plain-http=` of the URL.
   * @default from the URL, else false
   */
  plainHttp?: boolean;
}

/** A registry repository: the {@link OciStore} capabilities plus registry extras. */
export interface OciRepository extends OciStore {
  /** Repository name. */
  readonly name: string;
  /** The client this repository belongs to. */
  readonly client: OciClient;
  /** Resolves a tag or digest to a descriptor with `HEAD`; `undefined` when unknown. */
  resolveManifest(reference: string, options?: RequestOptions): Promise<Descriptor | undefined>;
  /** Every tag once, following `Link` pagination; no order is assumed; a missing repository yields none. */
  listTags(options?: RequestOptions): AsyncIterable<string>;
  /** Deletes a manifest by digest; a missing one is not an error; 405 throws `UNSUPPORTED`. */
  deleteManifest(digest: string, options?: RequestOptions): Promise<void>;
  /** Closes the client when this repository owns it (from {@link createOciBackend}); else no-op. */
  close(): Promise<void>;
}

/** A repository store made by {@link createOciBackend}; owns its client. */
export interface OciBackend extends OciRepository {
  /** The parsed reference the backend was made from. */
  readonly reference: OciReference;
}

/** A client for one registry. */
export interface OciClient {
  /** `host[:port]`. */
  readonly registry: string;
  /** `https://host[:port]` or `http://…`. */
  readonly origin: string;
  /** A store bound to `name` (validated: throws `NAME_INVALID`). */
  repository(name: string): OciRepository;
  /** Token requests made so far (diagnostics). */
  readonly tokenRequests: number;
  /** Closes the client's own `Agent` (not an injected dispatcher). */
  close(): Promise<void>;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(`option "${name}" must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * Creates a client for one registry. Options are validated at once (an {@link InvalidOptionError}
 * names the field); credentials are resolved lazily on the first request that needs them.
 */
export function createOciClient(options: OciClientOptions): OciClient {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('createOciClient needs an options object');
  }
  const registry = options.registry;
  if (typeof registry !== 'string' || !registry || registry.includes('/')) {
    throw new InvalidOptionError(
      `option "registry" must be "host[:port]" (no scheme, no path), got ${JSON.stringify(registry)}`,
    );
  }
  // Validate host syntax through the reference parser.
  try {
    parseReference(`oci://${registry}/x`);
  } catch (cause) {
    throw new InvalidOptionError(
      `option "registry" is not a valid host[:port]: ${JSON.stringify(registry)}`,
      {
        cause,
      },
    );
  }
  const retries = positiveInt('retries', options.retries, 3, 0);
  const minRetryDelayMs = positiveInt('minRetryDelayMs', options.minRetryDelayMs, 200, 0);
  const maxRetryDelayMs = positiveInt('maxRetryDelayMs', options.maxRetryDelayMs, 10_000, 0);
  const maxRetryAfterMs = positiveInt('maxRetryAfterMs', options.maxRetryAfterMs, 30_000, 0);
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 10_000);
  const headersTimeoutMs = positiveInt('headersTimeoutMs', options.headersTimeoutMs, 60_000);
  const bodyTimeoutMs = positiveInt('bodyTimeoutMs', options.bodyTimeoutMs, 30_000);
  const maxConcurrentTransfers = positiveInt('maxConcurrentTransfers', options.maxConcurrentTransfers, 8);
  const chunkSize = positiveInt('chunkSize', options.chunkSize, 8 * 1024 * 1024);
  const maxManifestBytes = positiveInt('maxManifestBytes', options.maxManifestBytes, 4 * 1024 * 1024);
  const tagPageSize = positiveInt('tagPageSize', options.tagPageSize, 1000);
  if (tagPageSize > 1000) {
    throw new InvalidOptionError(`option "tagPageSize" must be at most 1000, got ${tagPageSize}`);
  }
  if (options.onWarning !== undefined && typeof options.onWarning !== 'function') {
    throw new InvalidOptionError('option "onWarning" must be a function');
  }
  const env = options.env ?? process.env;
  const plainHttp = options.plainHttp ?? false;
  const origin = `${plainHttp ? 'http' : 'https'}://${registry}`;

  let dispatcher: Dispatcher;
  let ownAgent: Agent | undefined;
  if (options.dispatcher) {
    dispatcher = options.dispatcher;
  } else {
    const caFile = options.ca ?? (env.TASK_CACHE_OCI_CA || undefined);
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
    ownAgent = new Agent({
      connect: {
        timeout: connectTimeoutMs,
        ...(extra.length ? { ca: [...rootCertificates, ...extra] } : {}),
      },
      keepAliveTimeout: 30_000,
      connections: maxConcurrentTransfers + 8,
    });
    dispatcher = ownAgent;
  }

  const credentialOptions: ResolveCredentialsOptions = { env };
  if (options.credentials) credentialOptions.credentials = options.credentials;
  if (options.authFiles !== undefined) credentialOptions.configFiles = options.authFiles;

  const transport = new Transport({
    origin,
    dispatcher,
    credentials: () => resolveCredentials(registry, credentialOptions),
    retries,
    minRetryDelayMs,
    maxRetryDelayMs,
    maxRetryAfterMs,
    headersTimeoutMs,
    bodyTimeoutMs,
    userAgent: options.userAgent ?? 'task-cache-oci/0.1',
    onWarning: options.onWarning,
  });
  const transfers = new Semaphore(maxConcurrentTransfers);
  let closed = false;

  const client: OciClient = {
    registry,
    origin,
    get tokenRequests() {
      return transport.tokenRequests;
    },
    repository(name: string) {
      validateRepository(name);
      return createRepository({
        client,
        transport,
        transfers,
        name,
        registry,
        origin,
        chunkSize,
        maxManifestBytes,
        tagPageSize,
        retries,
        ownsClient: false,
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await ownAgent?.close();
    },
  };
  return client;
}

/**
 * Creates a store for the repository an `oci://` URL names, with its own client. `close()` it
 * when done. Throws `INVALID_REFERENCE` / `INVALID_OPTION` before any request.
 */
export function createOciBackend(options: OciBackendOptions): OciBackend {
  if (typeof options !== 'object' || options === null || typeof options.url !== 'string') {
    throw new InvalidOptionError('createOciBackend needs { url: "oci://HOST/REPO" }');
  }
  const reference = parseReference(options.url);
  const { url: _url, ...rest } = options;
  const clientOptions: OciClientOptions = {
    ...rest,
    registry: reference.registry,
    plainHttp: options.plainHttp ?? reference.plainHttp,
  };
  if (options.ca === undefined && reference.ca !== undefined) clientOptions.ca = reference.ca;
  const client = createOciClient(clientOptions);
  const repo = client.repository(reference.repository);
  return { ...repo, reference, close: () => client.close() };
}

interface RepositoryContext {
  client: OciClient;
  transport: Transport;
  transfers: Semaphore;
  name: string;
  registry: string;
  origin: string;
  chunkSize: number;
  maxManifestBytes: number;
  tagPageSize: number;
  retries: number;
  ownsClient: boolean;
}

function checkDescriptor(descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>, needSize: boolean) {
  parseDigest(descriptor.digest);
  if (needSize || descriptor.size !== undefined) {
    if (!Number.isSafeInteger(descriptor.size) || (descriptor.size as number) < 0) {
      throw new SizeInvalidError(
        `descriptor size must be a non-negative integer, got ${String(descriptor.size)}`,
        { digest: descriptor.digest },
      );
    }
  }
}

function withDigest(location: string, digest: string): string {
  // NOTE: the Location is used exactly as returned (its query may carry upload state), so
  // `digest=` is appended textually instead of re-serialising the query.
  const hash = location.indexOf('#');
  const base = hash >= 0 ? location.slice(0, hash) : location;
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}digest=${encodeURIComponent(digest)}`;
}

function contentType(res: Response): string | undefined {
  const value = res.headers['content-type'];
  const v = Array.isArray(value) ? value[0] : value;
  return v?.split(';')[0]?.trim() || undefined;
}

function header(res: Response, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buffer = new Uint8Array(size);
  let filled = 0;
  for await (const chunk of source) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const take = Math.min(size - filled, chunk.byteLength - offset);
      buffer.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === size) {
        yield buffer;
        buffer = new Uint8Array(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buffer.subarray(0, filled);
}

async function* bytesSource(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function createRepository(ctx: RepositoryContext): OciRepository {
  const { transport, transfers, name, origin } = ctx;
  const pull = [`repository:${name}:pull`];
  const push = [`repository:${name}:pull,push`];
  const location = `oci://${ctx.registry}/${name}`;
  const blobUrl = (digest: string) => `${origin}/v2/${name}/blobs/${digest}`;
  const manifestUrl = (reference: string) => `${origin}/v2/${name}/manifests/${reference}`;

  async function blobExists(
    descriptor: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
    options?: RequestOptions,
  ): Promise<boolean> {
    checkDescriptor(descriptor, false);
    const url = blobUrl(descriptor.digest);
    const res = await transport.send({ method: 'HEAD', url, scopes: pull, signal: options?.signal });
    if (res.statusCode === 200) {
      await res.body.dump().catch(() => {});
      return true;
    }
    if (res.statusCode === 404) {
      await res.body.dump().catch(() => {});
      return false;
    }
    throw await errorFromResponse(res, 'HEAD', { action: 'check blob', digest: descriptor.digest });
  }

  async function openBlob(descriptor: Descriptor, offset: number, signal?: AbortSignal): Promise<Response> {
    const url = blobUrl(descriptor.digest);
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await transport.send({ method: 'GET', url, headers, scopes: pull, signal });
    if (res.statusCode === 200 || (res.statusCode === 206 && offset > 0)) return res;
    if (res.statusCode === 404) {
      await res.body.dump().catch(() => {});
      throw new BlobUnknownError(`blob ${descriptor.digest} is not in ${location}`, {
        method: 'GET',
        url: res.url,
        statusCode: 404,
        digest: descriptor.digest,
      });
    }
    throw await errorFromResponse(res, 'GET', {
      action: 'fetch blob',
      digest: descriptor.digest,
      notFound: 'blob',
    });
  }

  async function fetchBlob(
    descriptor: Descriptor,
    options?: RequestOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    checkDescriptor(descriptor, true);
    const signal = options?.signal;
    const release = await transfers.acquire(signal);
    let first: Response;
    try {
      first = await openBlob(descriptor, 0, signal);
    } catch (error) {
      release();
      throw error;
    }
    let started = false;
    // A caller that drops the iterable without reading it must not keep the slot forever: the
    // body's idle timeout closes it, and the slot goes with it.
    first.body.once('close', () => {
      if (!started) release();
    });
    async function* raw(): AsyncGenerator<Uint8Array> {
      started = true;
      let current = first;
      let offset = 0;
      let resumes = 0;
      try {
        for (;;) {
          try {
            let skip = current.statusCode === 200 ? offset : 0;
            for await (const piece of current.body) {
              let chunk = piece as Uint8Array;
              if (skip > 0) {
                // The registry ignored Range and sent the blob from the start.
                const drop = Math.min(skip, chunk.byteLength);
                chunk = chunk.subarray(drop);
                skip -= drop;
                if (chunk.byteLength === 0) continue;
              }
              offset += chunk.byteLength;
              yield chunk;
            }
            return;
          } catch (error) {
            if (signal?.aborted) throw signal.reason;
            if (error instanceof OciError || !isTransientError(error) || resumes >= ctx.retries) {
              throw error instanceof OciError ? error : wrapNetworkError(error, 'GET', current.url);
            }
            resumes++;
            current.body.destroy();
            await sleep(transport.backoff(resumes - 1), signal);
            current = await openBlob(descriptor, offset, signal);
            if (current.statusCode === 206) {
              const range = header(current, 'content-range');
              const start = range ? /bytes\s+(\d+)-/.exec(range)?.[1] : undefined;
              if (start !== undefined && Number(start) !== offset) {
                current.body.destroy();
                throw new RegistryError(`registry resumed blob at byte ${start}, asked for ${offset}`, {
                  method: 'GET',
                  url: current.url,
                  statusCode: 206,
                  digest: descriptor.digest,
                });
              }
            }
          }
        }
      } finally {
        if (!current.body.destroyed) current.body.destroy();
        release();
      }
    }
    return verifyStream(raw(), descriptor, { signal, location: `${location}@${descriptor.digest}` });
  }

  async function startUpload(signal?: AbortSignal): Promise<string> {
    const url = `${origin}/v2/${name}/blobs/uploads/`;
    const res = await transport.send({
      method: 'POST',
      url,
      headers: { 'content-length': '0' },
      scopes: push,
      signal,
    });
    if (res.statusCode !== 202) {
      throw await errorFromResponse(res, 'POST', { action: 'start blob upload', notFound: 'name' });
    }
    await res.body.dump().catch(() => {});
    return uploadLocation(res, 'POST', url);
  }

  function uploadLocation(res: Response, method: string, url: string): string {
    const loc = header(res, 'location');
    if (!loc) {
      throw new RegistryError('registry sent no Location for the upload session', {
        method,
        url,
        statusCode: res.statusCode,
      });
    }
    // Relative Locations resolve against the request URL; absolute ones are kept as they are.
    return /^[a-z][a-z0-9+.-]*:/i.test(loc) ? loc : new URL(loc, res.url).toString();
  }

  /** Tries a cross-repository mount: `true` when mounted, a Location for a 202, else `undefined`. */
  async function tryMount(
    descriptor: Descriptor,
    from: string,
    signal?: AbortSignal,
  ): Promise<true | string | undefined> {
    validateRepository(from);
    const url = `${origin}/v2/${name}/blobs/uploads/?mount=${encodeURIComponent(descriptor.digest)}&from=${encodeURIComponent(from)}`;
    let res: Response;
    try {
      res = await transport.send({
        method: 'POST',
        url,
        headers: { 'content-length': '0' },
        scopes: [...push, `repository:${from}:pull`],
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // A token server refusing the source scope means: upload normally.
      if (error instanceof UnauthorizedError || error instanceof DeniedError) return undefined;
      throw error;
    }
    if (res.statusCode === 201) {
      await res.body.dump().catch(() => {});
      return true;
    }
    if (res.statusCode === 202) {
      await res.body.dump().catch(() => {});
      return uploadLocation(res, 'POST', url);
    }
    if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 404) {
      await res.body.dump().catch(() => {});
      return undefined;
    }
    throw await errorFromResponse(res, 'POST', { action: 'mount blob', digest: descriptor.digest });
  }

  async function commit(
    loc: string,
    descriptor: Descriptor,
    body: RequestBody | undefined,
    length: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const url = withDigest(loc, descriptor.digest);
    const res = await transport.send({
      method: 'PUT',
      url,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      ...(body === undefined ? {} : { body }),
      scopes: push,
      signal,
      // The upload session may be gone after a failed PUT: the caller restarts the whole upload.
      retries: 0,
    });
    if (res.statusCode === 201 || res.statusCode === 204 || res.statusCode === 200) {
      await res.body.dump().catch(() => {});
      return;
    }
    const error = await errorFromResponse(res, 'PUT', {
      action: 'push blob',
      digest: descriptor.digest,
      notFound: 'upload',
    });
    const after = parseRetryAfter(res.headers['retry-after']);
    if (after !== undefined) retryAfterOf.set(error, after);
    throw error;
  }

  async function uploadChunked(
    loc: string,
    descriptor: Descriptor,
    source: AsyncIterable<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<void> {
    let offset = 0;
    for await (const chunk of rechunk(source, ctx.chunkSize)) {
      signal?.throwIfAborted();
      if (offset + chunk.byteLength > descriptor.size) {
        throw new SizeMismatchError(`blob body is longer than the descriptor's ${descriptor.size} bytes`, {
          digest: descriptor.digest,
        });
      }
      const end = offset + chunk.byteLength - 1;
      const res = await transport.send({
        method: 'PATCH',
        url: loc,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(chunk.byteLength),
          'content-range': `${offset}-${end}`,
        },
        body: chunk,
        scopes: push,
        signal,
      });
      if (res.statusCode === 202 || res.statusCode === 204) {
        await res.body.dump().catch(() => {});
        loc = uploadLocation(res, 'PATCH', loc);
        offset = end + 1;
        continue;
      }
      if (res.statusCode === 416) {
        // A retried PATCH whose first attempt landed: ask the session where it stands.
        await res.body.dump().catch(() => {});
        const status = await transport.send({ method: 'GET', url: loc, scopes: push, signal });
        const range = header(status, 'range');
        await status.body.dump().catch(() => {});
        const have = range ? /(\d+)-(\d+)/.exec(range) : null;
        if (status.statusCode === 204 && have && Number(have[2]) === end) {
          loc = uploadLocation(status, 'GET', loc);
          offset = end + 1;
          continue;
        }
      }
      throw await errorFromResponse(res, 'PATCH', {
        action: 'upload blob chunk',
        digest: descriptor.digest,
        notFound: 'upload',
      });
    }
    if (offset !== descriptor.size) {
      throw new SizeMismatchError(`blob body is ${offset} bytes, the descriptor says ${descriptor.size}`, {
        digest: descriptor.digest,
      });
    }
    await commit(loc, descriptor, undefined, 0, signal);
  }

  async function pushBlob(descriptor: Descriptor, body: BlobBody, options?: PushBlobOptions): Promise<void> {
    checkDescriptor(descriptor, true);
    if (!(body instanceof Uint8Array) && typeof body !== 'function' && !isAsyncIterable(body)) {
      throw new InvalidOptionError(
        'pushBlob body must be a Uint8Array, an AsyncIterable or a function returning one',
      );
    }
    if (body instanceof Uint8Array && options?.digestVerified !== true) {
      // In-memory bytes are checked up front: a wrong digest is a caller bug, not a registry error.
      verifyBytes(body, descriptor);
    }
    const signal = options?.signal;
    const release = await transfers.acquire(signal);
    try {
      let session: string | undefined;
      for (const from of options?.mountFrom ?? []) {
        const mounted = await tryMount(descriptor, from, signal);
        if (mounted === true) return;
        if (typeof mounted === 'string') {
          session = mounted;
          break;
        }
      }
      const replayable = isReplayable(body);
      for (let attempt = 0; ; attempt++) {
        const loc = session ?? (await startUpload(signal));
        session = undefined;
        try {
          if (descriptor.size > ctx.chunkSize) {
            const source =
              body instanceof Uint8Array ? bytesSource(body) : typeof body === 'function' ? body() : body;
            await uploadChunked(loc, descriptor, source, signal);
          } else {
            await commit(loc, descriptor, body, descriptor.size, signal);
          }
          return;
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          const status = error instanceof OciError ? error.statusCode : undefined;
          const transient =
            isTransientError(error) ||
            (status !== undefined && (status === 408 || status === 429 || (status >= 500 && status !== 501)));
          if (!replayable || attempt >= ctx.retries || !transient) throw error;
          const retryAfter = retryAfterOf.get(error as OciError);
          if (retryAfter !== undefined && retryAfter > transport.config.maxRetryAfterMs) throw error;
          // The PUT may have landed even though we saw no answer: look before pushing again.
          if (await blobExists(descriptor, { signal }).catch(() => false)) return;
          await sleep(retryAfter ?? transport.backoff(attempt), signal);
        }
      }
    } finally {
      release();
    }
  }

  async function readManifest(res: Response): Promise<Uint8Array> {
    const declared = Number(header(res, 'content-length'));
    if (Number.isFinite(declared) && declared > ctx.maxManifestBytes) {
      res.body.destroy();
      throw new ManifestInvalidError(
        `manifest is ${declared} bytes, larger than maxManifestBytes (${ctx.maxManifestBytes})`,
        { method: 'GET', url: res.url, statusCode: res.statusCode },
      );
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Uint8Array).byteLength;
        if (total > ctx.maxManifestBytes) {
          res.body.destroy();
          throw new ManifestInvalidError(
            `manifest is larger than maxManifestBytes (${ctx.maxManifestBytes})`,
            {
              method: 'GET',
              url: res.url,
              statusCode: res.statusCode,
            },
          );
        }
        chunks.push(chunk as Uint8Array);
      }
    } catch (error) {
      throw error instanceof OciError ? error : wrapNetworkError(error, 'GET', res.url);
    }
    return new Uint8Array(Buffer.concat(chunks));
  }

  function checkManifestReference(reference: string): void {
    if (typeof reference === 'string' && reference.includes(':')) {
      parseDigest(reference);
    } else {
      validateTag(reference);
    }
  }

  function mediaTypeOf(res: Response, bytes: Uint8Array | undefined): string {
    const ct = contentType(res);
    if (ct && ct !== 'application/json' && ct !== 'application/octet-stream') return ct;
    if (bytes) {
      try {
        const mt = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: unknown }).mediaType;
        if (typeof mt === 'string' && mt) return mt;
      } catch {
        // fall through
      }
    }
    return ct ?? MEDIA_TYPE_IMAGE_MANIFEST;
  }

  async function fetchManifest(
    reference: string,
    options?: RequestOptions,
  ): Promise<FetchedManifest | undefined> {
    checkManifestReference(reference);
    const url = manifestUrl(reference);
    const res = await transport.send({
      method: 'GET',
      url,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: pull,
      signal: options?.signal,
    });
    if (res.statusCode === 404) {
      await res.body.dump().catch(() => {});
      return undefined;
    }
    if (res.statusCode !== 200) {
      throw await errorFromResponse(res, 'GET', { action: 'fetch manifest', notFound: 'manifest' });
    }
    const bytes = await readManifest(res);
    let digest: string;
    if (isDigest(reference)) {
      verifyBytes(
        bytes,
        { digest: reference, size: bytes.byteLength },
        { location: `${location}@${reference}` },
      );
      digest = reference;
    } else {
      digest = sha256Digest(bytes);
      const claimed = header(res, 'docker-content-digest');
      if (claimed?.startsWith('sha256:') && claimed !== digest) {
        verifyBytes(
          bytes,
          { digest: claimed, size: bytes.byteLength },
          { location: `${location}:${reference}` },
        );
      }
    }
    return { descriptor: { mediaType: mediaTypeOf(res, bytes), digest, size: bytes.byteLength }, bytes };
  }

  async function resolveManifest(
    reference: string,
    options?: RequestOptions,
  ): Promise<Descriptor | undefined> {
    checkManifestReference(reference);
    const url = manifestUrl(reference);
    const res = await transport.send({
      method: 'HEAD',
      url,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: pull,
      signal: options?.signal,
    });
    await res.body.dump().catch(() => {});
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) {
      throw await errorFromResponse(res, 'HEAD', { action: 'resolve manifest', notFound: 'manifest' });
    }
    const digest = header(res, 'docker-content-digest');
    const size = Number(header(res, 'content-length'));
    const mediaType = contentType(res);
    if (isDigest(digest) && Number.isSafeInteger(size) && mediaType && mediaType !== 'application/json') {
      if (isDigest(reference) && digest !== reference) {
        throw new RegistryError(`registry resolved ${reference} to a different digest ${digest}`, {
          method: 'HEAD',
          url,
          digest: reference,
        });
      }
      return { mediaType, digest, size };
    }
    // Not every registry sends Docker-Content-Digest on HEAD: fall back to GET.
    return (await fetchManifest(reference, options))?.descriptor;
  }

  async function pushManifest(
    bytes: Uint8Array,
    mediaType: string,
    options?: PushManifestOptions,
  ): Promise<Descriptor> {
    if (!(bytes instanceof Uint8Array))
      throw new InvalidOptionError('pushManifest bytes must be a Uint8Array');
    if (typeof mediaType !== 'string' || !mediaType) {
      throw new InvalidOptionError('pushManifest mediaType must be a non-empty string');
    }
    if (options?.tag !== undefined) validateTag(options.tag);
    const digest = sha256Digest(bytes);
    const url = manifestUrl(options?.tag ?? digest);
    const res = await transport.send({
      method: 'PUT',
      url,
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: push,
      signal: options?.signal,
    });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 204) {
      throw await errorFromResponse(res, 'PUT', { action: 'push manifest', digest });
    }
    await res.body.dump().catch(() => {});
    return { mediaType, digest, size: bytes.byteLength };
  }

  async function tag(descriptor: Descriptor, tagName: string, options?: RequestOptions): Promise<void> {
    validateTag(tagName);
    checkDescriptor(descriptor, false);
    const fetched = await fetchManifest(descriptor.digest, options);
    if (!fetched) {
      throw new ManifestUnknownError(`cannot tag ${descriptor.digest}: manifest is not in ${location}`, {
        digest: descriptor.digest,
      });
    }
    await pushManifest(fetched.bytes, descriptor.mediaType || fetched.descriptor.mediaType, {
      tag: tagName,
      ...(options?.signal ? { signal: options.signal } : {}),
    });
  }

  async function* listTags(options?: RequestOptions): AsyncGenerator<string> {
    const seen = new Set<string>();
    const visited = new Set<string>();
    let url: string | undefined = `${origin}/v2/${name}/tags/list?n=${ctx.tagPageSize}`;
    while (url !== undefined) {
      if (visited.has(url)) {
        throw new RegistryError('tag list pagination loops back to a page already read', {
          method: 'GET',
          url,
        });
      }
      visited.add(url);
      const res = await transport.send({ method: 'GET', url, scopes: pull, signal: options?.signal });
      if (res.statusCode === 404) {
        await res.body.dump().catch(() => {});
        return;
      }
      if (res.statusCode !== 200) {
        throw await errorFromResponse(res, 'GET', { action: 'list tags', notFound: 'name' });
      }
      let json: { tags?: unknown };
      try {
        json = (await res.body.json()) as { tags?: unknown };
      } catch (cause) {
        throw new RegistryError('tag list is not valid JSON', { method: 'GET', url, cause });
      }
      const tags = Array.isArray(json.tags) ? json.tags : [];
      for (const t of tags) {
        if (typeof t === 'string' && !seen.has(t)) {
          seen.add(t);
          yield t;
        }
      }
      url = parseLinkNext(res.headers.link, url);
    }
  }

  async function deleteManifest(digest: string, options?: RequestOptions): Promise<void> {
    parseDigest(digest);
    const url = manifestUrl(digest);
    const res = await transport.send({
      method: 'DELETE',
      url,
      scopes: [`repository:${name}:delete`],
      signal: options?.signal,
    });
    if (
      res.statusCode === 202 ||
      res.statusCode === 200 ||
      res.statusCode === 204 ||
      res.statusCode === 404
    ) {
      await res.body.dump().catch(() => {});
      return;
    }
    if (res.statusCode === 405) {
      await res.body.dump().catch(() => {});
      throw new UnsupportedError(
        `delete manifest failed: the registry does not allow deleting manifests (HTTP 405 Method Not Allowed)`,
        { method: 'DELETE', url, statusCode: 405, digest },
      );
    }
    throw await errorFromResponse(res, 'DELETE', { action: 'delete manifest', digest, notFound: 'manifest' });
  }

  return {
    name,
    location,
    client: ctx.client,
    fetchBlob,
    blobExists,
    pushBlob,
    fetchManifest,
    resolveManifest,
    pushManifest,
    tag,
    listTags,
    deleteManifest,
    close: async () => {},
  };
}

/** `Retry-After` of a failed commit PUT, for the upload retry loop. */
const retryAfterOf = new WeakMap<OciError, number>();

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
