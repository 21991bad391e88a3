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

/** Discards a response body we do not read (keeps the connection reusable). */
export async function discard(res: Pick<Response, 'body'>): Promise<void> {
  await res.body.dump().catch(() => {});
}

/** The first value of a response header. */
export function header(res: Pick<Response, 'headers'>, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
