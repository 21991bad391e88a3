// The auth layer: anonymous first, then whatever the registry's 401 challenge asks for — Basic,
// or a Bearer token from the token service (distribution token auth, as Harbor, GHCR, GitLab and
// ECR speak it). Tokens are cached per realm + service + scope set and shared by every request of
// the client; concurrent fetches of one token are coalesced. Credentials only go to the registry's
// own origin.
import type { Credentials } from '../../credentials.js';
import { DeniedError, InsecureRedirectError, OciError, UnauthorizedError } from '../../errors.js';
import type { Secret } from '../../redact.js';
import { type AuthChallenge, parseWwwAuthenticate } from '../headers.js';
import { mergeScopes, scopeKey } from '../scopes.js';
import { wrapNetworkError } from './retry.js';
import { discard, isReplayable, type Layer, readCapped, type Send } from './types.js';

interface TokenEntry {
  token: string;
  expiresAt: number;
}

/** Settings of {@link createAuth}. */
export interface AuthOptions {
  /** `https://host:port` or `http://host:port` of the registry. */
  origin: string;
  /** Resolves the registry's credentials (called once, on first need). */
  credentials: () => Promise<Credentials | undefined>;
  /** The token service's transport: the HTTP exchange with retries (no auth, no redirects). */
  tokenSend: Send;
  /** Largest token-server answer read. */
  maxTokenBytes: number;
  /** Where credentials were looked for (for "no credentials were found" messages). */
  credentialSources: readonly string[];
}

/** The fix a "no credentials" message names: where they were looked for. */
export function noCredentialsHint(origin: string, sources: readonly string[]): string {
  return `no credentials were found for ${new URL(origin).host} (looked in ${sources.join(', ') || 'nothing: auth files are disabled'})`;
}

/** The auth state of one client and its layer. */
export interface Auth {
  /** The layer to put above the HTTP exchange (and below redirects). */
  layer: Layer;
  /** Credentials, resolved once. */
  credentials(): Promise<Credentials | undefined>;
  /** Secrets known so far (credentials and tokens), for scrubbing server-sent text. */
  secrets(): Secret[];
}

function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}

/** Creates the auth state of one client. */
export function createAuth(options: AuthOptions): Auth {
  const { origin } = options;
  let scheme: 'unknown' | 'basic' | 'bearer' = 'unknown';
  let bearer: { realm: string; service: string | undefined } | undefined;
  const tokens = new Map<string, TokenEntry>();
  const inflight = new Map<string, Promise<TokenEntry>>();
  let credentialsPromise: Promise<Credentials | undefined> | undefined;
  let resolved: Credentials | undefined;

  const credentials = (): Promise<Credentials | undefined> => {
    credentialsPromise ??= options.credentials().then((c) => {
      resolved = c;
      return c;
    });
    return credentialsPromise;
  };

  const tokenKey = (realm: string, service: string | undefined, scopes: Iterable<string>) =>
    `${realm}\n${service ?? ''}\n${scopeKey(scopes)}`;

  async function authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    if (scheme === 'basic') {
      const creds = await credentials();
      return creds ? basicHeader(creds) : undefined;
    }
    if (scheme === 'bearer' && bearer) {
      const key = tokenKey(bearer.realm, bearer.service, scopes);
      const entry = tokens.get(key);
      if (entry && entry.expiresAt > Date.now()) return `Bearer ${entry.token}`;
      if (entry) {
        // Expired locally: fetch a fresh one now rather than paying a 401 round trip.
        tokens.delete(key);
        const fresh = await token(bearer.realm, bearer.service, scopes, signal);
        return `Bearer ${fresh.token}`;
      }
    }
    return undefined;
  }

  async function handleChallenge(
    challenges: AuthChallenge[],
    scopes: string[],
    sentAuth: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const found = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (found) {
      const realm = found.params.realm!;
      const service = found.params.service || undefined;
      const challengeScopes = (found.params.scope ?? '').split(' ').filter(Boolean);
      const all = mergeScopes([...scopes, ...challengeScopes]);
      const key = tokenKey(realm, service, all);
      const cached = tokens.get(key);
      if (cached && sentAuth !== `Bearer ${cached.token}` && cached.expiresAt > Date.now()) {
        // Another request refreshed it meanwhile.
        scheme = 'bearer';
        bearer = { realm, service };
        tokens.set(tokenKey(realm, service, scopes), cached);
        return true;
      }
      // A 401 with the token we sent means it expired or was revoked (`invalid_token`, or
      // `insufficient_scope` with a now-wider scope set): fetch a fresh one, once.
      tokens.delete(key);
      const entry = await token(realm, service, all, signal);
      tokens.set(tokenKey(realm, service, scopes), entry);
      scheme = 'bearer';
      bearer = { realm, service };
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const creds = await credentials();
      if (!creds || sentAuth?.startsWith('Basic ')) return false;
      scheme = 'basic';
      return true;
    }
    return false;
  }

  function token(realm: string, service: string | undefined, scopes: string[], signal?: AbortSignal) {
    const key = tokenKey(realm, service, scopes);
    const cached = tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return Promise.resolve(cached);
    let pending = inflight.get(key);
    if (!pending) {
      pending = fetchToken(realm, service, mergeScopes(scopes), signal)
        .then((entry) => {
          tokens.set(key, entry);
          return entry;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, pending);
    }
    return pending;
  }

  async function fetchToken(
    realm: string,
    service: string | undefined,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<TokenEntry> {
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch (cause) {
      throw new UnauthorizedError('registry sent an invalid token realm', { cause });
    }
    if (realmUrl.protocol !== 'https:' && new URL(origin).protocol === 'https:') {
      throw new InsecureRedirectError(
        'refused to send credentials to a plain-HTTP token realm of an HTTPS registry',
        {
          url: realm,
        },
      );
    }
    if (service) realmUrl.searchParams.set('service', service);
    for (const scope of scopes) realmUrl.searchParams.append('scope', scope);
    const creds = await credentials();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (creds) headers.authorization = basicHeader(creds);
    const url = realmUrl.toString();
    const res = await options.tokenSend({
      method: 'GET',
      url,
      headers,
      scopes: [],
      signal,
      followRedirects: false,
    });
    if (res.statusCode === 401) {
      await discard(res);
      throw new UnauthorizedError(
        creds
          ? 'token server rejected the credentials'
          : `token server requires credentials: ${noCredentialsHint(origin, options.credentialSources)}`,
        { method: 'GET', url, statusCode: 401 },
      );
    }
    if (res.statusCode === 403) {
      await discard(res);
      throw new DeniedError('token server denied access', { method: 'GET', url, statusCode: 403 });
    }
    if (res.statusCode !== 200) {
      await discard(res);
      throw new UnauthorizedError(`token server answered HTTP ${res.statusCode}`, {
        method: 'GET',
        url,
        statusCode: res.statusCode,
      });
    }
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    let text: Buffer | undefined;
    try {
      text = await readCapped(res, options.maxTokenBytes);
    } catch (cause) {
      if (cause instanceof OciError) throw cause;
      throw wrapNetworkError(cause, 'GET', url);
    }
    if (text === undefined) {
      throw new UnauthorizedError(
        `token server answer is larger than maxTokenBytes (${options.maxTokenBytes})`,
        { method: 'GET', url, statusCode: 200 },
      );
    }
    try {
      json = JSON.parse(text.toString('utf8')) as typeof json;
    } catch (cause) {
      throw new UnauthorizedError('token server sent invalid JSON', { method: 'GET', url, cause });
    }
    const value =
      typeof json.token === 'string' && json.token
        ? json.token
        : typeof json.access_token === 'string'
          ? json.access_token
          : '';
    if (!value) {
      throw new UnauthorizedError('token server response has neither "token" nor "access_token"', {
        method: 'GET',
        url,
      });
    }
    const lifetime =
      typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in * 1000 : 60_000;
    // Refresh a little early so a token does not expire in flight.
    const margin = Math.min(5_000, lifetime / 10);
    return { token: value, expiresAt: Date.now() + lifetime - margin };
  }

  const layer: Layer = (next) => async (request) => {
    if (new URL(request.url).origin !== origin) {
      // NOTE: credentials belong to the registry's origin only (S3 presigned URLs would even
      // reject them); a caller-supplied Authorization is dropped too.
      const { authorization: _a, Authorization: _b, ...headers } = request.headers ?? {};
      const res = await next({ ...request, headers });
      res.authenticated = (await credentials()) !== undefined;
      return res;
    }
    for (let retried = false; ; retried = true) {
      const sent = await authorization(request.scopes, request.signal);
      const res = await next(
        sent ? { ...request, headers: { ...request.headers, authorization: sent } } : request,
      );
      res.authenticated = (await credentials()) !== undefined;
      if (res.statusCode !== 401 || retried || !isReplayable(request.body)) return res;
      const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
      await discard(res);
      if (!(await handleChallenge(challenges, request.scopes, sent, request.signal))) return res;
    }
  };

  return {
    layer,
    credentials,
    secrets: () => [resolved, ...[...tokens.values()].map((t) => t.token)],
  };
}
