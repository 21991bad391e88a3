// The ONE retry policy of the registry client: what is transient and how long to wait. The
// transport's retry layer, the token fetch, the upload loop and the blob-resume loop all ask it.
import { NetworkError, OciError, OciTimeoutError, SizeMismatchError } from '../../errors.js';
import { parseRetryAfter } from '../headers.js';
import { discard, isReplayable, type Layer } from './types.js';

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

/** OpenSSL's codes for a TLS handshake answered by something that does not speak TLS. */
const PLAIN_HTTP_CODES = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_HTTP_REQUEST',
]);

/**
 * `true` for statuses worth another attempt: 408, 429 and 5xx, except 501 (Not Implemented) and
 * 505 (HTTP Version Not Supported), which say the same the next time.
 */
export function isTransientStatus(status: number): boolean {
  return (
    status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505)
  );
}

/** `true` for errors worth another attempt: a network hiccup or a timeout (also when wrapped). */
export function isTransientError(error: unknown): boolean {
  if (error instanceof OciTimeoutError || error instanceof NetworkError) return true;
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && (TIMEOUT_CODES.has(code) || NETWORK_CODES.has(code))) return true;
  const cause = (error as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== error && isTransientError(cause);
}

/** What one failed attempt looked like. */
export type AttemptOutcome =
  | { status: number; retryAfterMs?: number | undefined }
  | { error: unknown; retryAfterMs?: number | undefined };

/** Settings of {@link createRetryPolicy}. */
export interface RetryPolicyOptions {
  retries: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  maxRetryAfterMs: number;
  /** For tests: replaces Math.random in the jitter. */
  random?: (() => number) | undefined;
}

/** Decides, after a failed attempt, whether and when to try again. */
export interface RetryPolicy {
  readonly retries: number;
  readonly maxRetryAfterMs: number;
  /**
   * Milliseconds to wait before attempt `attempt + 1` (0-based `attempt` just failed), or
   * `undefined` when the outcome is not transient, the budget (`retries`, default the
   * policy's) is spent, or the server asks for a longer wait than `maxRetryAfterMs`.
   */
  delay(attempt: number, outcome: AttemptOutcome, retries?: number): number | undefined;
  /** Backoff for attempt `attempt` (0-based): exponential with full jitter. */
  backoff(attempt: number): number;
}

/** Creates the retry policy of one client. */
export function createRetryPolicy(options: RetryPolicyOptions): RetryPolicy {
  const { minRetryDelayMs, maxRetryDelayMs, maxRetryAfterMs } = options;
  const random = options.random ?? Math.random;
  const backoff = (attempt: number) => {
    const ceiling = Math.min(maxRetryDelayMs, minRetryDelayMs * 2 ** attempt);
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  };
  return {
    retries: options.retries,
    maxRetryAfterMs,
    backoff,
    delay(attempt, outcome, retries = options.retries) {
      if (attempt >= retries) return undefined;
      let transient: boolean;
      if ('status' in outcome) {
        transient = isTransientStatus(outcome.status);
      } else {
        const status = outcome.error instanceof OciError ? outcome.error.statusCode : undefined;
        transient = isTransientError(outcome.error) || (status !== undefined && isTransientStatus(status));
      }
      if (!transient) return undefined;
      if (outcome.retryAfterMs !== undefined) {
        // The server asks for a longer wait than we may spend: fail now, clearly.
        return outcome.retryAfterMs > maxRetryAfterMs ? undefined : outcome.retryAfterMs;
      }
      return backoff(attempt);
    },
  };
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

/** Wraps a low-level failure as a typed `OciError` (timeout or network). */
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
  if (code !== undefined && PLAIN_HTTP_CODES.has(code) && url.startsWith('https:')) {
    // NOTE: OpenSSL's own text ("ssl3_get_record:wrong version number") names no fix.
    return new NetworkError(
      `registry request failed: the TLS handshake got a non-TLS answer [${code}]; the registry seems to speak plain HTTP on this port: add ?plain-http=true to the store URL (or plainHttp: true)`,
      { method, url, cause: error },
    );
  }
  return new NetworkError(`registry request failed: ${code ? `${code} ` : ''}${message}`, {
    method,
    url,
    cause: error,
  });
}

/**
 * The retry layer (oras-go `retry.Transport{Base, Policy}`): repeats a request whose body can be
 * replayed while the policy calls the outcome transient, honouring `Retry-After`; a response it
 * gives up on is returned as it is, a low-level error is wrapped as a typed `OciError`.
 */
export function retryLayer(policy: RetryPolicy): Layer {
  return (next) => async (request) => {
    const retries = isReplayable(request.body) ? (request.retries ?? policy.retries) : 0;
    for (let attempt = 0; ; attempt++) {
      request.signal?.throwIfAborted();
      let response: Awaited<ReturnType<typeof next>>;
      try {
        response = await next(request);
      } catch (error) {
        if (request.signal?.aborted) throw request.signal.reason;
        const wait = policy.delay(attempt, { error }, retries);
        if (wait === undefined) throw wrapNetworkError(error, request.method, request.url);
        await sleep(wait, request.signal);
        continue;
      }
      if (!isTransientStatus(response.statusCode)) return response;
      const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
      const wait = policy.delay(attempt, { status: response.statusCode, retryAfterMs }, retries);
      if (wait === undefined) return response;
      await discard(response);
      await sleep(wait, request.signal);
    }
  };
}
