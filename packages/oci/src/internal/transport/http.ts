// The bottom layer: one HTTP exchange on the client's undici dispatcher, with timeouts and the
// registry's `Warning` headers reported (distribution-spec v1.1.1 asks clients to surface them).
import type { Dispatcher } from 'undici';
import { OciTimeoutError } from '../../errors.js';
import { redactUrl, type Secret, scrubSecrets } from '../../redact.js';
import { parseWarnings } from '../headers.js';
import type { RequestDispatcher } from './lazy-agent.js';
import type { Send, WarningEvent } from './types.js';

/** Settings of {@link httpSend}. */
export interface HttpOptions {
  dispatcher: RequestDispatcher;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Budget of one exchange, through the last byte of the body unless `request.budget === false`. */
  requestTimeoutMs: number;
  userAgent: string;
  onWarning?: ((event: WarningEvent) => void) | undefined;
  /** Secrets to remove from server-sent text (warnings). */
  secrets: () => Iterable<Secret>;
}

/** Sends the request as given: no auth, no redirects, no retries. Errors are undici's own. */
export function httpSend(options: HttpOptions): Send {
  return async (request) => {
    const target = new URL(request.url);
    const body = request.body;
    // NOTE: the budget aborts the exchange through undici's own signal, so a body that trickles
    // (one byte a second never trips the idle timeout) is cut too; the caller's signal still wins.
    const budget = new AbortController();
    const ms = options.requestTimeoutMs;
    const timer = setTimeout(() => {
      budget.abort(
        new OciTimeoutError(`registry request took longer than requestTimeoutMs (${ms} ms)`, {
          method: request.method,
          url: request.url,
        }),
      );
    }, ms);
    timer.unref?.();
    const signal = request.signal ? AbortSignal.any([request.signal, budget.signal]) : budget.signal;
    let res: Dispatcher.ResponseData;
    try {
      res = await options.dispatcher.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: request.method,
        headers: { 'user-agent': options.userAgent, ...request.headers },
        // undici streams (async) iterables with the given Content-Length.
        body: (body === undefined
          ? null
          : typeof body === 'function'
            ? body()
            : body) as Dispatcher.DispatchOptions['body'],
        signal,
        headersTimeout: options.headersTimeoutMs,
        bodyTimeout: options.bodyTimeoutMs,
      });
    } catch (error) {
      clearTimeout(timer);
      // The caller's abort stays the caller's; our budget is a typed timeout.
      if (request.signal?.aborted) throw request.signal.reason;
      if (budget.signal.aborted) throw budget.signal.reason;
      throw error;
    }
    if (request.budget === false) clearTimeout(timer);
    else res.body.once('close', () => clearTimeout(timer));
    let warnings = parseWarnings(res.headers.warning);
    if (warnings.length > 0) {
      const secrets = [...options.secrets()];
      warnings = warnings.map((text) => scrubSecrets(text, secrets));
      for (const text of warnings) {
        try {
          options.onWarning?.({ text, method: request.method, url: redactUrl(request.url) });
        } catch {
          // A throwing listener must not fail the request.
        }
      }
    }
    return {
      statusCode: res.statusCode,
      headers: res.headers,
      body: res.body,
      url: request.url,
      warnings,
      authenticated: false,
    };
  };
}
