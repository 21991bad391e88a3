// The HTTP engine of the registry client: auth (anonymous, Basic, Bearer token flow), redirects
// that never leak credentials, retries with backoff and Retry-After, timeouts, Warning headers.
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Credentials } from '../credentials.js';
import {
  DeniedError,
  InsecureRedirectError,
  NetworkError,
  OciError,
  OciTimeoutError,
  RegistryError,
  SizeMismatchError,
  UnauthorizedError,
} from '../errors.js';
import { redactUrl } from '../redact.js';
import { type AuthChallenge, parseRetryAfter, parseWarnings, parseWwwAuthenticate } from './headers.js';
import { mergeScopes, scopeKey } from './scopes.js';

/** What the transport reports through `onWarning`. */
export interface WarningEvent {
  /** The warning text the registry sent. */
  text: string;
  method: string;
  /** Redacted URL. */
  url: string;
}

export interface TransportConfig {
  /** `https://host:port` or `http://host:port` of the registry. */
  origin: string;
  dispatcher: Dispatcher;
  credentials: () => Promise<Credentials | undefined>;
  retries: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  maxRetryAfterMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  userAgent: string;
  onWarning?: ((event: WarningEvent) => void) | undefined;
  /** For tests: replaces Math.random in the jitter. */
  random?: () => number;
}

/** A request body. Functions are called per attempt (replayable); bare iterables are sent once. */
export type RequestBody = Uint8Array | (() => AsyncIterable<Uint8Array>) | AsyncIterable<Uint8Array>;

export interface SendOptions {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Token scopes this request needs, e.g. `repository:a/b:pull`. */
  scopes: string[];
  signal?: AbortSignal | undefined;
  /** Retry budget for this request; defaults to the client's. 0 disables retries. */
  retries?: number;
  /** Follow 3xx redirects (default true). */
  followRedirects?: boolean;
}

export interface Response {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  /** Final URL after redirects. */
  url: string;
  warnings: string[];
  /** `true` when the client has credentials for the registry. */
  authenticated: boolean;
}

const RETRY_STATUS = (status: number) =>
  status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const NETWORK_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
]);

/** `true` for errors worth retrying (a network hiccup or a timeout). */
export function isTransientError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && (TIMEOUT_CODES.has(code) || NETWORK_CODES.has(code))) return true;
  if (error instanceof OciTimeoutError || error instanceof NetworkError) return true;
  const cause = (error as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== error && isTransientError(cause);
}

/** Wraps a low-level failure as a typed `OciError` (`TIMEOUT` or `NETWORK`). */
export function wrapNetworkError(error: unknown, method: string, url: string): OciError {
  if (error instanceof OciError) return error;
  const code = (error as { code?: string })?.code;
  const message = (error as Error)?.message ?? String(error);
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return new SizeMismatchError('the request body did not have the length its descriptor declares', {
      method,
      url,
      cause: error,
    });
  }
  if (code && TIMEOUT_CODES.has(code)) {
    const what =
      code === 'UND_ERR_CONNECT_TIMEOUT'
        ? 'connect timeout'
        : code === 'UND_ERR_HEADERS_TIMEOUT'
          ? 'no response headers within the headers timeout'
          : 'body idle timeout';
    return new OciTimeoutError(`registry request failed: ${what}`, { method, url, cause: error });
  }
  return new NetworkError(`registry request failed: ${code ? `${code} ` : ''}${message}`, {
    method,
    url,
    cause: error,
  });
}

interface TokenEntry {
  token: string;
  expiresAt: number;
}

/** Sleeps `ms`, rejecting with the signal's reason when it fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Per-registry HTTP transport. One instance per client; token cache and auth scheme are shared
 * across the client's repositories.
 */
export class Transport {
  readonly config: TransportConfig;
  #scheme: 'unknown' | 'basic' | 'bearer' = 'unknown';
  #bearer: { realm: string; service: string | undefined } | undefined;
  readonly #tokens = new Map<string, TokenEntry>();
  readonly #inflight = new Map<string, Promise<TokenEntry>>();
  #credentials: Promise<Credentials | undefined> | undefined;
  /** Number of token requests made (for diagnostics). */
  tokenRequests = 0;

  constructor(config: TransportConfig) {
    this.config = config;
  }

  credentials(): Promise<Credentials | undefined> {
    this.#credentials ??= this.config.credentials();
    return this.#credentials;
  }

  /** Backoff delay for attempt `n` (0-based): exponential with full jitter. */
  backoff(attempt: number): number {
    const { minRetryDelayMs, maxRetryDelayMs } = this.config;
    const ceiling = Math.min(maxRetryDelayMs, minRetryDelayMs * 2 ** attempt);
    const random = this.config.random ?? Math.random;
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  /**
   * Sends a request with auth, redirects and retries. Retries only when the body is replayable
   * (absent, bytes, or a factory). Returns any final response; mapping statuses to errors is
   * the caller's job ({@link errorFromResponse}).
   */
  async send(options: SendOptions): Promise<Response> {
    const replayable = options.body === undefined || isReplayable(options.body);
    const retries = replayable ? (options.retries ?? this.config.retries) : 0;
    for (let attempt = 0; ; attempt++) {
      options.signal?.throwIfAborted();
      let response: Response;
      try {
        response = await this.#sendOnce(options);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (attempt < retries && isTransientError(error)) {
          await sleep(this.backoff(attempt), options.signal);
          continue;
        }
        throw wrapNetworkError(error, options.method, options.url);
      }
      if (RETRY_STATUS(response.statusCode) && attempt < retries) {
        const retryAfter = parseRetryAfter(response.headers['retry-after']);
        if (retryAfter !== undefined && retryAfter > this.config.maxRetryAfterMs) {
          // The registry asks for a longer wait than we may spend: fail now, clearly.
          return response;
        }
        await response.body.dump().catch(() => {});
        await sleep(retryAfter ?? this.backoff(attempt), options.signal);
        continue;
      }
      return response;
    }
  }

  async #sendOnce(options: SendOptions): Promise<Response> {
    const origin = this.config.origin;
    let url = options.url;
    let method = options.method;
    let body = options.body;
    let authRetried = false;
    let redirectedToGet = false;
    for (let redirects = 0; ; ) {
      const target = new URL(url);
      const sameOrigin = target.origin === origin;
      const headers: Record<string, string> = { 'user-agent': this.config.userAgent, ...options.headers };
      if (redirectedToGet) {
        for (const name of Object.keys(headers)) {
          if (/^content-/i.test(name)) delete headers[name];
        }
      }
      let sentAuth: string | undefined;
      if (sameOrigin) {
        sentAuth = await this.#authorization(options.scopes, options.signal);
        if (sentAuth) headers.authorization = sentAuth;
      } else {
        // NOTE: credentials belong to the registry's origin only (S3 presigned URLs would even
        // reject them); a caller-supplied Authorization is dropped too.
        delete headers.authorization;
        delete headers.Authorization;
      }
      const payload = body === undefined ? null : typeof body === 'function' ? body() : body;
      const res = await this.config.dispatcher.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method,
        headers,
        // undici streams (async) iterables with the given Content-Length.
        body: payload as Dispatcher.DispatchOptions['body'],
        signal: options.signal,
        headersTimeout: this.config.headersTimeoutMs,
        bodyTimeout: this.config.bodyTimeoutMs,
      });
      const warnings = parseWarnings(res.headers.warning);
      // The response handed to the caller as it is (no redirect or auth retry follows).
      const respond = async (): Promise<Response> => ({
        statusCode: res.statusCode,
        headers: res.headers,
        body: res.body,
        url,
        warnings,
        authenticated: (await this.credentials()) !== undefined,
      });
      for (const text of warnings) {
        try {
          this.config.onWarning?.({ text, method, url: redactUrl(url) });
        } catch {
          // A throwing listener must not fail the request.
        }
      }
      if (
        res.statusCode === 401 &&
        sameOrigin &&
        !authRetried &&
        (body === undefined || isReplayable(body))
      ) {
        const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
        await res.body.dump().catch(() => {});
        if (await this.#handleChallenge(challenges, options.scopes, sentAuth, options.signal)) {
          authRetried = true;
          continue;
        }
        return {
          statusCode: 401,
          headers: res.headers,
          body: res.body,
          url,
          warnings,
          authenticated: (await this.credentials()) !== undefined,
        };
      }
      const location = res.headers.location;
      if (
        options.followRedirects !== false &&
        [301, 302, 303, 307, 308].includes(res.statusCode) &&
        typeof location === 'string'
      ) {
        const next = new URL(location, url);
        if (target.protocol === 'https:' && next.protocol !== 'https:') {
          await res.body.dump().catch(() => {});
          throw new InsecureRedirectError(
            `refused a redirect from HTTPS to ${next.protocol.replace(':', '')}`,
            {
              method,
              url: redactUrl(url),
              statusCode: res.statusCode,
            },
          );
        }
        if (++redirects > 10) {
          await res.body.dump().catch(() => {});
          throw new RegistryError('too many redirects (more than 10)', {
            method,
            url,
            statusCode: res.statusCode,
          });
        }
        if (res.statusCode === 303 && method !== 'HEAD') {
          method = 'GET';
          body = undefined;
          redirectedToGet = true;
        } else if (body !== undefined && !isReplayable(body)) {
          // Cannot resend a consumed stream to the new location.
          return respond();
        }
        await res.body.dump().catch(() => {});
        url = next.toString();
        continue;
      }
      return respond();
    }
  }

  async #authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    if (this.#scheme === 'basic') {
      const creds = await this.credentials();
      return creds ? basicHeader(creds) : undefined;
    }
    if (this.#scheme === 'bearer' && this.#bearer) {
      const key = this.#tokenKey(this.#bearer.realm, this.#bearer.service, scopes);
      const entry = this.#tokens.get(key);
      if (entry && entry.expiresAt > Date.now()) return `Bearer ${entry.token}`;
      if (entry) {
        // Expired locally: fetch a fresh one now rather than paying a 401 round trip.
        this.#tokens.delete(key);
        try {
          const fresh = await this.#token(this.#bearer.realm, this.#bearer.service, scopes, signal);
          return `Bearer ${fresh.token}`;
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          throw error;
        }
      }
    }
    return undefined;
  }

  #tokenKey(realm: string, service: string | undefined, scopes: Iterable<string>): string {
    return `${realm}\n${service ?? ''}\n${scopeKey(scopes)}`;
  }

  async #handleChallenge(
    challenges: AuthChallenge[],
    scopes: string[],
    sentAuth: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      const realm = bearer.params.realm!;
      const service = bearer.params.service || undefined;
      const challengeScopes = (bearer.params.scope ?? '').split(' ').filter(Boolean);
      const all = mergeScopes([...scopes, ...challengeScopes]);
      const key = this.#tokenKey(realm, service, all);
      const cached = this.#tokens.get(key);
      if (cached && sentAuth !== `Bearer ${cached.token}` && cached.expiresAt > Date.now()) {
        // Another request refreshed it meanwhile.
        this.#scheme = 'bearer';
        this.#bearer = { realm, service };
        this.#tokens.set(this.#tokenKey(realm, service, scopes), cached);
        return true;
      }
      // A 401 with the token we sent means it expired or was revoked (`invalid_token`, or
      // `insufficient_scope` with a now-wider scope set): fetch a fresh one, once.
      this.#tokens.delete(key);
      const entry = await this.#token(realm, service, all, signal);
      this.#tokens.set(this.#tokenKey(realm, service, scopes), entry);
      this.#scheme = 'bearer';
      this.#bearer = { realm, service };
      return true;
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic) {
      const creds = await this.credentials();
      if (!creds || sentAuth?.startsWith('Basic ')) return false;
      this.#scheme = 'basic';
      return true;
    }
    return false;
  }

  #token(
    realm: string,
    service: string | undefined,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<TokenEntry> {
    const key = this.#tokenKey(realm, service, scopes);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return Promise.resolve(cached);
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#fetchToken(realm, service, mergeScopes(scopes), signal)
        .then((entry) => {
          this.#tokens.set(key, entry);
          return entry;
        })
        .finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async #fetchToken(
    realm: string,
    service: string | undefined,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<TokenEntry> {
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch (cause) {
      throw new UnauthorizedError(`registry sent an invalid token realm`, { cause });
    }
    if (realmUrl.protocol !== 'https:' && new URL(this.config.origin).protocol === 'https:') {
      throw new InsecureRedirectError(
        'refused to send credentials to a plain-HTTP token realm of an HTTPS registry',
        {
          url: realm,
        },
      );
    }
    if (service) realmUrl.searchParams.set('service', service);
    for (const scope of scopes) realmUrl.searchParams.append('scope', scope);
    const creds = await this.credentials();
    const headers: Record<string, string> = {
      'user-agent': this.config.userAgent,
      accept: 'application/json',
    };
    if (creds) headers.authorization = basicHeader(creds);
    const url = realmUrl.toString();
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      let res: Dispatcher.ResponseData;
      try {
        this.tokenRequests++;
        res = await this.config.dispatcher.request({
          origin: realmUrl.origin,
          path: realmUrl.pathname + realmUrl.search,
          method: 'GET',
          headers,
          signal,
          headersTimeout: this.config.headersTimeoutMs,
          bodyTimeout: this.config.bodyTimeoutMs,
        });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (attempt < this.config.retries && isTransientError(error)) {
          await sleep(this.backoff(attempt), signal);
          continue;
        }
        throw wrapNetworkError(error, 'GET', url);
      }
      if (RETRY_STATUS(res.statusCode) && attempt < this.config.retries) {
        await res.body.dump().catch(() => {});
        await sleep(parseRetryAfter(res.headers['retry-after']) ?? this.backoff(attempt), signal);
        continue;
      }
      if (res.statusCode === 401) {
        await res.body.dump().catch(() => {});
        throw new UnauthorizedError(
          creds
            ? 'token server rejected the credentials'
            : 'token server requires credentials; none were configured',
          { method: 'GET', url, statusCode: 401 },
        );
      }
      if (res.statusCode === 403) {
        await res.body.dump().catch(() => {});
        throw new DeniedError('token server denied access', { method: 'GET', url, statusCode: 403 });
      }
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => {});
        throw new UnauthorizedError(`token server answered HTTP ${res.statusCode}`, {
          method: 'GET',
          url,
          statusCode: res.statusCode,
        });
      }
      let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
      try {
        json = (await res.body.json()) as typeof json;
      } catch (cause) {
        throw new UnauthorizedError('token server sent invalid JSON', { method: 'GET', url, cause });
      }
      const token =
        typeof json.token === 'string' && json.token
          ? json.token
          : typeof json.access_token === 'string'
            ? json.access_token
            : '';
      if (!token) {
        throw new UnauthorizedError('token server response has neither "token" nor "access_token"', {
          method: 'GET',
          url,
        });
      }
      const lifetime =
        typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in * 1000 : 60_000;
      // Refresh a little early so a token does not expire in flight.
      const margin = Math.min(5_000, lifetime / 10);
      return { token, expiresAt: Date.now() + lifetime - margin };
    }
  }
}

function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}

/** `true` when the body can be sent again (bytes, or a factory returning a fresh iterable). */
export function isReplayable(body: RequestBody): boolean {
  return body instanceof Uint8Array || typeof body === 'function';
}
