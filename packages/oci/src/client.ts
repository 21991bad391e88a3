/**
 * The OCI distribution client (distribution-spec v1.1.1,
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md) on undici 7.
 *
 * `createOciClient(options)` gives a client for one registry with one keep-alive `Agent`;
 * `client.repository(name)` gives an {@link OciRepository} (an {@link OciStore}).
 * `createOciBackend({ url: 'oci://host/repo' })` does both from a reference. The parts live in
 * `src/registry/` (options, blobs, uploads, manifests, tags) and the HTTP engine in
 * `src/internal/transport/` (auth, retry and redirect layers).
 */
import { credentialSources, type ResolveCredentialsOptions, resolveCredentials } from './credentials.js';
import { InvalidOptionError } from './errors.js';
import { createPushRateLimiter } from './internal/push-rate.js';
import { Semaphore } from './internal/semaphore.js';
import { createTransport } from './internal/transport/index.js';
import { type OciReference, parseReference, validateRepository } from './reference.js';
import { createBlobReader } from './registry/blobs.js';
import type { RepositoryContext } from './registry/context.js';
import { createManifests } from './registry/manifests.js';
import { type OciClientOptions, resolveClientOptions } from './registry/options.js';
import { assumeCapabilities, type ProbeOptions, probeCapabilities } from './registry/probe.js';
import { listTags } from './registry/tags.js';
import { createBlobWriter } from './registry/uploads.js';
import type { Descriptor, OciStore, RegistryCapabilities, RequestOptions } from './types.js';

export type { WarningEvent } from './internal/transport/index.js';
export type { OciClientOptions } from './registry/options.js';

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

/**
 * Creates a client for one registry. Options are validated at once (an {@link InvalidOptionError}
 * names the field); credentials are resolved lazily on the first request that needs them.
 */
export function createOciClient(options: OciClientOptions): OciClient {
  const o = resolveClientOptions(options);
  const credentialOptions: ResolveCredentialsOptions = { env: o.env };
  if (options.credentials) credentialOptions.credentials = options.credentials;
  if (options.authFiles !== undefined) credentialOptions.configFiles = options.authFiles;
  const transport = createTransport({
    ...o,
    credentials: () => resolveCredentials(o.registry, credentialOptions),
    credentialSources: credentialSources(credentialOptions),
  });
  const transfers = new Semaphore(o.maxConcurrentTransfers);
  const pushRate =
    o.maxBlobPushesPerMinute === undefined ? undefined : createPushRateLimiter(o.maxBlobPushesPerMinute);
  let closed = false;
  // What the registry's answers show, shared by every repository of this client.
  const learned: RegistryCapabilities = {};

  const client: OciClient = {
    registry: o.registry,
    origin: o.origin,
    get tokenRequests() {
      return transport.tokenRequests;
    },
    repository(name: string) {
      validateRepository(name);
      return createRepository(client, {
        transport,
        transfers,
        name,
        registry: o.registry,
        origin: o.origin,
        location: `oci://${o.registry}/${name}`,
        chunkSize: o.chunkSize,
        monolithicUploadMaxBytes: o.monolithicUploadMaxBytes,
        pushRate,
        maxManifestBytes: o.maxManifestBytes,
        tagPageSize: o.tagPageSize,
        maxErrorBodyBytes: o.maxErrorBodyBytes,
        maxTagPages: o.maxTagPages,
        learned,
        tlsCa: o.tlsCa,
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await o.ownAgent?.close();
    },
  };
  return client;
}

/**
 * Creates a store for the repository an `oci://` URL names, with its own client. `close()` it
 * when done. Throws `InvalidReferenceError` / `InvalidOptionError` before any request.
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

/** One repository: the blob, upload, manifest and tag parts over the client's transport. */
function createRepository(client: OciClient, ctx: RepositoryContext): OciRepository {
  const blobs = createBlobReader(ctx);
  return {
    name: ctx.name,
    location: ctx.location,
    client,
    ...blobs,
    ...createBlobWriter(ctx, blobs),
    ...createManifests(ctx),
    listTags: (options?: RequestOptions) => listTags(ctx, options),
    probeCapabilities: (options?: ProbeOptions) => probeCapabilities(ctx, options),
    observedCapabilities: () => ({ ...ctx.learned }),
    assumeCapabilities: (capabilities: RegistryCapabilities) => assumeCapabilities(ctx.learned, capabilities),
    close: async () => {},
  };
}
