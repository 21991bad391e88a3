// The registry client's HTTP engine, composed of layers (undici interceptors / oras-go
// `retry.Transport{Base, Policy}`), outermost first:
//
//   retry (one policy)  →  redirect (no HTTPS→HTTP)  →  auth (Basic / Bearer, per hop)  →  http
//
// so a retried request is redirected and authorised afresh, a redirect hop to another origin
// carries no credentials, and a 401 after a token expiry is answered once per hop.
import type { Credentials } from '../../credentials.js';
import type { Secret } from '../../redact.js';
import { createAuth, noCredentialsHint } from './auth.js';
import { httpSend } from './http.js';
import type { RequestDispatcher } from './lazy-agent.js';
import { redirectLayer } from './redirect.js';
import { createRetryPolicy, type RetryPolicy, type RetryPolicyOptions, retryLayer } from './retry.js';
import type { Send, WarningEvent } from './types.js';

export { isTransientError, isTransientStatus, type RetryPolicy, sleep, wrapNetworkError } from './retry.js';
export type { Method, RequestBody, Response, SendOptions, WarningEvent } from './types.js';
export { discard, header, isReplayable, readCapped } from './types.js';

/** Settings of {@link createTransport}: the retry policy's and the HTTP exchange's. */
export interface TransportConfig extends RetryPolicyOptions {
  /** `https://host:port` or `http://host:port` of the registry. */
  origin: string;
  dispatcher: RequestDispatcher;
  credentials: () => Promise<Credentials | undefined>;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Budget of one attempt, through the last byte of the answer (unless `budget: false`). */
  requestTimeoutMs: number;
  /** Largest token-server answer read. */
  maxTokenBytes: number;
  /** Where credentials were looked for (named by "no credentials were found" messages). */
  credentialSources: readonly string[];
  userAgent: string;
  onWarning?: ((event: WarningEvent) => void) | undefined;
}

/** The per-registry transport: one per client, shared by its repositories. */
export interface Transport {
  /** Sends a request through every layer; any final response is returned (mapping is the caller's). */
  send: Send;
  /** The one retry policy (also used by the upload and blob-resume loops). */
  readonly policy: RetryPolicy;
  /** Secrets known so far, for scrubbing server-sent text. */
  secrets(): Secret[];
  /** Credentials, resolved once. */
  credentials(): Promise<Credentials | undefined>;
  /** "no credentials were found for HOST (looked in …)": the fix a 401 without credentials names. */
  noCredentialsHint(): string;
  /** Token requests made so far (diagnostics; every attempt counts). */
  readonly tokenRequests: number;
}

/** Composes the layers for one registry. */
export function createTransport(config: TransportConfig): Transport {
  const policy = createRetryPolicy(config);
  const secrets = (): Secret[] => auth.secrets();
  const http = httpSend({
    dispatcher: config.dispatcher,
    headersTimeoutMs: config.headersTimeoutMs,
    bodyTimeoutMs: config.bodyTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    userAgent: config.userAgent,
    onWarning: config.onWarning,
    secrets,
  });
  const retry = retryLayer(policy);
  let tokenRequests = 0;
  const auth = createAuth({
    origin: config.origin,
    credentials: config.credentials,
    maxTokenBytes: config.maxTokenBytes,
    credentialSources: config.credentialSources,
    tokenSend: retry((request) => {
      tokenRequests++;
      return http(request);
    }),
  });
  const send = retry(redirectLayer()(auth.layer(http)));
  return {
    send,
    policy,
    secrets,
    credentials: auth.credentials,
    noCredentialsHint: () => noCredentialsHint(config.origin, config.credentialSources),
    get tokenRequests() {
      return tokenRequests;
    },
  };
}
