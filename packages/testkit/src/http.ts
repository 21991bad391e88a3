import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A buffered HTTP response (test helper; bodies here are small). */
export interface SimpleResponse {
  /** HTTP status code. */
  status: number;
  /** Response headers (lower-case names). */
  headers: IncomingHttpHeaders;
  /** The whole body. */
  body: Buffer;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json(): unknown;
}

/** Options of {@link simpleRequest}. */
export interface SimpleRequestOptions {
  /**
   * HTTP method.
   * @default 'GET'
   */
  method?: string;
  /**
   * Request headers.
   * @default {}
   */
  headers?: Record<string, string>;
  /**
   * Request body (content-length is set from it).
   * @default no body
   */
  body?: Buffer | string;
  /**
   * PEM of the CA to trust for https URLs (e.g. `registry.caPem`); only this CA is trusted.
   * @default Node's bundled CAs
   */
  ca?: string | undefined;
  /**
   * Aborts the request.
   * @default none
   */
  signal?: AbortSignal;
}

/**
 * One HTTP(S) request with node:http(s), no connection reuse, the whole body buffered — a test
 * helper for poking the fixtures' servers directly (e.g. `GET /v2/` with the private CA).
 */
export function simpleRequest(
  url: string | URL,
  options: SimpleRequestOptions = {},
): Promise<SimpleResponse> {
  const target = new URL(url);
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers: Record<string, string> = { ...options.headers };
  if (body) headers['content-length'] = String(body.length);
  return new Promise<SimpleResponse>((resolve, reject) => {
    const common = {
      method: options.method ?? 'GET',
      headers,
      agent: false as const,
      signal: options.signal,
    };
    const req =
      target.protocol === 'https:'
        ? httpsRequest(target, { ...common, ca: options.ca })
        : httpRequest(target, common);
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const buffer = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: buffer,
          text: () => buffer.toString('utf8'),
          json: () => JSON.parse(buffer.toString('utf8')),
        });
      });
    });
    req.end(body);
  });
}
