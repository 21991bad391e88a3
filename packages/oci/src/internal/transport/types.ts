// The shapes the transport layers pass between them (undici-interceptor style: a layer takes the
// next `Send` and returns a `Send`).
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** What the transport reports through `onWarning`. */
export interface WarningEvent {
  /** The warning text the registry sent (known secrets removed). */
  text: string;
  method: string;
  /** Redacted URL. */
  url: string;
}

/** A request body. Functions are called per attempt (replayable); bare iterables are sent once. */
export type RequestBody = Uint8Array | (() => AsyncIterable<Uint8Array>) | AsyncIterable<Uint8Array>;

/** HTTP methods the registry client uses. */
export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** One request as the layers see it. */
export interface SendOptions {
  method: Method;
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody | undefined;
  /** Token scopes this request needs, e.g. `repository:a/b:pull`. */
  scopes: string[];
  signal?: AbortSignal | undefined;
  /** Retry budget for this request; defaults to the client's. 0 disables retries. */
  retries?: number;
  /** Follow 3xx redirects (default true). */
  followRedirects?: boolean;
  /**
   * `false` for blob transfers: the per-request budget (`requestTimeoutMs`) then ends at the
   * response headers, and the body is bounded by the idle timeout and the caller's signal.
   * Default true: the budget runs through the last byte of the answer.
   */
  budget?: boolean;
}

/** A response as the layers hand it back; mapping statuses to errors is the caller's job. */
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

/** Sends one request through the layers below. */
export type Send = (request: SendOptions) => Promise<Response>;

/** A transport layer: wraps the next `Send`. */
export type Layer = (next: Send) => Send;

/** `true` when the body can be sent again (absent, bytes, or a factory returning a fresh iterable). */
export function isReplayable(body: RequestBody | undefined): boolean {
  return body === undefined || body instanceof Uint8Array || typeof body === 'function';
}

/** Most of an unread body drained to keep the connection reusable; past it, the connection closes. */
const DISCARD_LIMIT = 64 * 1024;
/** Longest wait to drain an unread body (a slow-loris body is cut, not waited for). */
const DISCARD_WAIT_MS = 1_000;

/**
 * Discards a response body we do not read: a short one is drained (the connection stays
 * reusable), a long or slow one is cut (the connection is closed).
 */
export async function discard(res: Pick<Response, 'body'>): Promise<void> {
  // NOTE: AbortSignal.timeout's timer does not keep the process alive.
  await res.body
    .dump({ limit: DISCARD_LIMIT, signal: AbortSignal.timeout(DISCARD_WAIT_MS) })
    .catch(() => res.body.destroy());
}

/**
 * Reads a whole (small) body, at most `max` bytes: `undefined` when it is longer (the body is
 * then cut, never buffered past `max`). A declared `Content-Length` above `max` is refused before
 * any byte is read.
 */
export async function readCapped(
  res: Pick<Response, 'body' | 'headers'>,
  max: number,
): Promise<Buffer | undefined> {
  const declared = Number(header(res, 'content-length'));
  if (Number.isFinite(declared) && declared > max) {
    res.body.destroy();
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += (chunk as Uint8Array).byteLength;
    if (total > max) {
      res.body.destroy();
      return undefined;
    }
    chunks.push(chunk as Uint8Array);
  }
  return Buffer.concat(chunks);
}

/** The first value of a response header. */
export function header(res: Pick<Response, 'headers'>, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
