/**
 * A quirk proxy: the fault proxy placed in front of the real CNCF registry, answering as a
 * given hosted registry does where its documented rules differ from CNCF distribution. One
 * profile per registry (the sources are cited in packages/testkit/README.md and
 * docs/registries.md). It reproduces rules, not whole products: everything a profile does not
 * name is the CNCF registry's own answer.
 */
import { type FaultAction, type FaultProxy, type SeenRequest, startProxy } from './fault-proxy.js';

/** The registries a quirk proxy can play. */
export type QuirkProfile = 'gitlab' | 'quay' | 'ghcr' | 'ecr' | 'harbor';

/** Every profile, for suites that run through each. */
export const QUIRK_PROFILES: readonly QuirkProfile[] = ['gitlab', 'quay', 'ghcr', 'ecr', 'harbor'];

/**
 * Config and artifact media types an allowlisting registry accepts (GitLab's
 * `docs/supported-media-types.md`, Quay's default `ALLOWED_OCI_ARTIFACT_TYPES` without
 * `FEATURE_GENERAL_OCI_SUPPORT`): the image configs, the empty descriptor and Helm's.
 */
export const ALLOWLISTED_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
  'application/vnd.oci.empty.v1+json',
  'application/vnd.cncf.helm.config.v1+json',
];

/** Options of {@link startQuirkProxy}. */
export interface QuirkProxyOptions {
  /** Upstream base URL: the registry fixture's `baseUrl`. */
  upstream: string;
  /** CA PEM for an HTTPS upstream. */
  ca?: string;
  /** The registry to play. */
  profile: QuirkProfile;
  /**
   * `ghcr`: completed layer pushes allowed per `rateWindowMs` (a token bucket refilling
   * continuously); the next push gets `429 TOOMANYREQUESTS` with `Retry-After`.
   * @default 2000
   */
  layerPushesPerWindow?: number;
  /** `ghcr`: the window of `layerPushesPerWindow`, in milliseconds. @default 60000 */
  rateWindowMs?: number;
  /** `ghcr`: largest `PATCH` body. @default 4194304 (4 MiB) */
  maxPatchBytes?: number;
  /** `ecr`: smallest `PATCH` part, except the last of a session. @default 5242880 (5 MiB) */
  minPatchBytes?: number;
  /** `ecr`: most layers in one manifest. @default 500 */
  maxLayers?: number;
  /**
   * Any profile: blob `GET`s reach the registry without their `Range` header, so it answers
   * `200` with the whole blob, as a registry, proxy or CDN that ignores `Range` does (RFC 9110
   * §14.2 lets a server ignore it). Each dropped header is a refusal `range-ignored` (status 200).
   * @default false
   */
  ignoreRange?: boolean;
}

/** One answer the proxy gave instead of the registry's, for tests to assert that a rule fired. */
export interface QuirkRefusal {
  rule: string;
  method: string;
  url: string;
  status: number;
}

/** A running quirk proxy. */
export interface QuirkProxy extends FaultProxy {
  readonly profile: QuirkProfile;
  /** Every answer a rule of the profile gave, in order. */
  readonly refusals: QuirkRefusal[];
}

const MANIFEST_RE = /^\/v2\/(.+)\/manifests\/([^/?]+)$/;
const UPLOADS_RE = /^\/v2\/(.+)\/blobs\/uploads\/?$/;
const SESSION_RE = /^\/v2\/(.+)\/blobs\/uploads\/([^/?]+)$/;
const REFERRERS_RE = /^\/v2\/(.+)\/referrers\/[^/?]+$/;
const BLOB_RE = /^\/v2\/(.+)\/blobs\/[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function registryError(status: number, code: string, message: string, detail?: unknown): FaultAction {
  return {
    kind: 'respond',
    status,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] }),
  };
}

function parseJson(body: Buffer | undefined): Record<string, unknown> | undefined {
  try {
    const doc: unknown = JSON.parse(body?.toString('utf8') ?? '');
    return typeof doc === 'object' && doc !== null && !Array.isArray(doc)
      ? (doc as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function digestsOf(doc: Record<string, unknown>): string[] {
  const out: string[] = [];
  const add = (d: unknown) => {
    const digest = (d as { digest?: unknown } | null)?.digest;
    if (typeof digest === 'string') out.push(digest);
  };
  add(doc.config);
  for (const list of [doc.layers, doc.manifests]) if (Array.isArray(list)) list.forEach(add);
  return out;
}

/**
 * Starts a quirk proxy on `127.0.0.1` (random port, plain HTTP) in front of `options.upstream`,
 * answering as `options.profile`:
 *
 * - `gitlab`: a manifest or index with an `artifactType`, or a `config.mediaType`, outside
 *   {@link ALLOWLISTED_MEDIA_TYPES} → `400 MANIFEST_INVALID` ("unknown media type"); no
 *   referrers API (`404`).
 * - `quay`: the same allowlist; a mount (`?mount=`) without `from` → `400 UNSUPPORTED`.
 * - `ghcr`: a `PATCH` body over 4 MiB → `416 REQUESTED_RANGE_NOT_SATISFIABLE` (GHCR's answer); more than `layerPushesPerWindow` completed blob
 *   uploads per window → `429 TOOMANYREQUESTS` with `Retry-After`.
 * - `ecr`: a manifest with more than 500 layers → `400 MANIFEST_INVALID`; a `PATCH` after a part
 *   smaller than 5 MiB in the same session → `400 BLOB_UPLOAD_INVALID` (only the last part may be
 *   small); a mount of a blob no manifest pushed through the proxy references → `202` with a
 *   fresh upload session, as if `mount` were not asked.
 * - `harbor`: a `PATCH` whose `Content-Range` does not start where the session stands → `416`;
 *   a mount `from` a repository nothing was pushed to through the proxy → `401 UNAUTHORIZED`.
 *
 * With `ignoreRange`, any profile also drops the `Range` header of blob `GET`s (the registry
 * answers `200` with the whole blob).
 *
 * Close it in `afterAll`/`afterEach`.
 */
export async function startQuirkProxy(options: QuirkProxyOptions): Promise<QuirkProxy> {
  const { profile } = options;
  const refusals: QuirkRefusal[] = [];
  const referenced = new Set<string>();
  const repositories = new Set<string>();
  const sessions = new Map<string, { offset: number; lastPart?: number }>();
  const perWindow = options.layerPushesPerWindow ?? 2000;
  const windowMs = options.rateWindowMs ?? 60_000;
  const bucket = { tokens: perWindow, at: Date.now() };
  const maxPatch = options.maxPatchBytes ?? 4 * 1024 * 1024;
  const minPatch = options.minPatchBytes ?? 5 * 1024 * 1024;
  const maxLayers = options.maxLayers ?? 500;
  const allowlist = profile === 'gitlab' || profile === 'quay';

  const refuse = (req: SeenRequest, rule: string, action: FaultAction): FaultAction => {
    refusals.push({
      rule,
      method: req.method,
      url: req.url,
      status: action.kind === 'respond' ? action.status : 202,
    });
    return action;
  };

  const handle = (req: SeenRequest): FaultAction => {
    const url = new URL(req.url, 'http://proxy');
    const path = url.pathname;
    if (
      options.ignoreRange &&
      req.method === 'GET' &&
      req.headers.range !== undefined &&
      BLOB_RE.test(path)
    ) {
      const { range: _dropped, ...headers } = req.headers;
      req.headers = headers;
      refusals.push({ rule: 'range-ignored', method: req.method, url: req.url, status: 200 });
      return { kind: 'pass' };
    }
    const manifest = MANIFEST_RE.exec(path);
    if (manifest && req.method === 'PUT') {
      const doc = parseJson(req.body) ?? {};
      const configType = (doc.config as { mediaType?: unknown } | undefined)?.mediaType;
      if (allowlist) {
        for (const type of [doc.artifactType, configType]) {
          if (type !== undefined && !ALLOWLISTED_MEDIA_TYPES.includes(String(type))) {
            return refuse(
              req,
              'media-type-allowlist',
              registryError(
                400,
                'MANIFEST_INVALID',
                'manifest invalid',
                `unknown media type: ${String(type)}`,
              ),
            );
          }
        }
      }
      if (profile === 'ecr' && Array.isArray(doc.layers) && doc.layers.length > maxLayers) {
        return refuse(
          req,
          'layer-cap',
          registryError(
            400,
            'MANIFEST_INVALID',
            'manifest invalid',
            `${doc.layers.length} layers, at most ${maxLayers}`,
          ),
        );
      }
      return { kind: 'pass' };
    }
    if ((profile === 'gitlab' || profile === 'quay') && REFERRERS_RE.test(path) && req.method === 'GET') {
      return refuse(req, 'no-referrers-api', registryError(404, 'UNSUPPORTED', 'not found'));
    }
    const uploads = UPLOADS_RE.exec(path);
    if (uploads && req.method === 'POST') {
      const mount = url.searchParams.get('mount');
      const from = url.searchParams.get('from');
      if (mount !== null && profile === 'quay' && from === null) {
        return refuse(req, 'mount-without-from', registryError(400, 'UNSUPPORTED', 'mount requires from'));
      }
      if (mount !== null && profile === 'harbor' && from !== null && !repositories.has(from)) {
        return refuse(
          req,
          'mount-missing-repository',
          registryError(401, 'UNAUTHORIZED', 'unauthorized to access repository'),
        );
      }
      if (mount !== null && profile === 'ecr' && !referenced.has(mount)) {
        // ECR starts an upload session instead: forwarded without the mount, the registry answers 202.
        refusals.push({ rule: 'mount-unreferenced', method: req.method, url: req.url, status: 202 });
        req.url = `${path}`;
        return { kind: 'pass' };
      }
      if (url.searchParams.has('digest')) return takeToken(req) ?? { kind: 'pass' };
      return { kind: 'pass' };
    }
    const session = SESSION_RE.exec(path);
    if (session && req.method === 'PATCH') {
      const id = session[2] ?? '';
      const size = req.body?.byteLength ?? 0;
      const state = sessions.get(id) ?? { offset: 0 };
      if (profile === 'ghcr' && size > maxPatch) {
        // GHCR's own answer, as its users report it (a 416, not a 413).
        return refuse(
          req,
          'patch-too-large',
          registryError(
            416,
            'REQUESTED_RANGE_NOT_SATISFIABLE',
            `the request body is too large and exceeds the maximum permissible limit of ${(maxPatch / 1048576).toFixed(2)}MiB`,
          ),
        );
      }
      if (profile === 'ecr' && state.lastPart !== undefined && state.lastPart < minPatch) {
        return refuse(
          req,
          'patch-part-too-small',
          registryError(
            400,
            'BLOB_UPLOAD_INVALID',
            `a part of ${state.lastPart} bytes, at least ${minPatch} but the last`,
          ),
        );
      }
      if (profile === 'harbor') {
        const range = /^(\d+)-(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
        if (range && Number(range[1]) !== state.offset) {
          return refuse(req, 'out-of-order-chunk', {
            kind: 'respond',
            status: 416,
            headers: { range: `0-${Math.max(0, state.offset - 1)}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'out of order chunk' }],
            }),
          });
        }
      }
      return { kind: 'pass' };
    }
    if (session && req.method === 'PUT') return takeToken(req) ?? { kind: 'pass' };
    return { kind: 'pass' };
  };

  // ghcr: a completed layer push takes a token; none left → 429 with the wait for the next one.
  const takeToken = (req: SeenRequest): FaultAction | undefined => {
    if (profile !== 'ghcr') return undefined;
    const now = Date.now();
    bucket.tokens = Math.min(perWindow, bucket.tokens + ((now - bucket.at) * perWindow) / windowMs);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    const waitS = Math.max(1, Math.ceil(((1 - bucket.tokens) * windowMs) / perWindow / 1000));
    return refuse(req, 'rate-limit', {
      kind: 'respond',
      status: 429,
      headers: { 'retry-after': String(waitS), 'content-type': 'application/json' },
      body: JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'rate limit exceeded' }] }),
    });
  };

  const observe = (req: SeenRequest, status: number) => {
    const path = new URL(req.url, 'http://proxy').pathname;
    const manifest = MANIFEST_RE.exec(path);
    if (manifest && req.method === 'PUT' && status === 201) {
      repositories.add(manifest[1] ?? '');
      for (const d of digestsOf(parseJson(req.body) ?? {})) referenced.add(d);
    }
    const session = SESSION_RE.exec(path);
    if (session && req.method === 'PATCH' && status === 202) {
      const id = session[2] ?? '';
      const size = req.body?.byteLength ?? 0;
      const state = sessions.get(id) ?? { offset: 0 };
      sessions.set(id, { offset: state.offset + size, lastPart: size });
    }
    if (session && req.method === 'PUT' && status === 201) repositories.add(session[1] ?? '');
    const uploads = UPLOADS_RE.exec(path);
    if (uploads && req.method === 'POST' && status === 201) repositories.add(uploads[1] ?? '');
  };

  const proxy = await startProxy({
    upstream: options.upstream,
    ...(options.ca ? { ca: options.ca } : {}),
    handle,
    observe,
    bufferBody: (req) =>
      (req.method === 'PUT' && MANIFEST_RE.test(new URL(req.url, 'http://proxy').pathname)) ||
      req.method === 'PATCH',
  });
  return Object.assign(proxy, { profile, refusals });
}
