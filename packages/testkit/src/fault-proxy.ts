/**
 * A small `node:http` proxy placed between a client and a real server (the registry fixture) that
 * can inject faults (status codes, resets mid-body, stalls) and rewrite answers (redirects,
 * pagination). In pass-through mode it only records the requests, so tests can count them.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/** One request the proxy saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The request body, when {@link ProxyOptions.bufferBody} asked for it. */
  body?: Buffer;
}

/** What to do with a request. */
export type FaultAction =
  | { kind: 'pass' }
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, send the upstream headers and `afterBytes` of the body, then destroy the socket. */
  | { kind: 'reset-mid-body'; afterBytes: number }
  /** Accept the request and never answer. */
  | { kind: 'stall' }
  /** Forward, send the headers and `afterBytes` of the body, then go silent. */
  | { kind: 'stall-body'; afterBytes: number }
  /** Forward (the upstream acts on it), then never answer the client. */
  | { kind: 'forward-then-stall' }
  /** Forward and add these headers to the answer. */
  | { kind: 'pass'; addHeaders: Record<string, string> }
  /** Read the request body, then destroy the socket without answering. */
  | { kind: 'reset-after-request' };

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /** Upstream base URL (`http://…` or `https://…`). */
  upstream: string;
  /** CA PEM for an HTTPS upstream. */
  ca?: string;
  /**
   * Decides per request; `n` counts requests with the same method and path so far (1-based). It
   * may rewrite `req.url` and `req.headers` before a `pass`: the rewritten request is forwarded
   * (and is what {@link FaultProxy.requests} holds).
   */
  handle?: (req: SeenRequest, n: number) => FaultAction | Promise<FaultAction>;
  /** Headers added to every forwarded request (e.g. credentials the proxy itself holds). */
  upstreamHeaders?: Record<string, string>;
  /**
   * Read the whole request body into `SeenRequest.body` before `handle` sees the request (for
   * small bodies only: manifests, upload chunks of a test).
   * @default never
   */
  bufferBody?: (req: SeenRequest) => boolean;
  /** Called with the upstream's status of every forwarded request (after `handle` let it through). */
  observe?: (req: SeenRequest, status: number) => void;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Every request seen so far, in arrival order. */
  requests: SeenRequest[];
  /** Closes the listener and every open socket. */
  close(): Promise<void>;
}

/**
 * Starts a proxy on `127.0.0.1` (random port) forwarding to `options.upstream`; `options.handle`
 * decides per request what happens (default: pass through). Close it in `afterAll`/`afterEach`.
 */
export async function startProxy(options: ProxyOptions): Promise<FaultProxy> {
  const requests: SeenRequest[] = [];
  const counts = new Map<string, number>();
  const upstream = new URL(options.upstream);
  const agent =
    upstream.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, ...(options.ca ? { ca: options.ca } : {}) })
      : new http.Agent({ keepAlive: true });
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer(async (req, res) => {
    const seen: SeenRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    requests.push(seen);
    const key = `${seen.method} ${seen.url.split('?')[0]}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (options.bufferBody?.(seen)) {
      const parts: Buffer[] = [];
      for await (const part of req) parts.push(part as Buffer);
      seen.body = Buffer.concat(parts);
    }
    let action: FaultAction;
    try {
      action = (await options.handle?.(seen, n)) ?? { kind: 'pass' };
    } catch (error) {
      res.writeHead(500).end(String(error));
      return;
    }
    if (action.kind === 'respond') {
      if (seen.body === undefined) req.resume();
      res.writeHead(action.status, action.headers ?? {});
      res.end(action.body ?? '');
      return;
    }
    if (action.kind === 'stall') {
      req.resume();
      return;
    }
    if (action.kind === 'reset-after-request') {
      req.resume();
      req.on('end', () => req.socket.destroy());
      return;
    }
    // `handle` may have rewritten the request's url or headers (a quirk proxy dropping `Range`).
    const headers = { ...seen.headers, ...options.upstreamHeaders, host: upstream.host };
    const forward = (upstream.protocol === 'https:' ? https : http).request(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: seen.url,
        headers,
        agent,
      },
      (up) => {
        options.observe?.(seen, up.statusCode ?? 502);
        if (action.kind === 'forward-then-stall') {
          up.resume();
          return;
        }
        const outHeaders: http.OutgoingHttpHeaders = { ...up.headers };
        if (action.kind === 'pass' && 'addHeaders' in action) Object.assign(outHeaders, action.addHeaders);
        // Upload Locations from the registry point at the upstream; keep the client on the proxy.
        if (typeof outHeaders.location === 'string' && outHeaders.location.startsWith(upstream.origin)) {
          outHeaders.location = outHeaders.location.slice(upstream.origin.length);
        }
        res.writeHead(up.statusCode ?? 502, outHeaders);
        if (action.kind === 'pass') {
          up.pipe(res);
          return;
        }
        let sent = 0;
        const limit = action.afterBytes;
        up.on('data', (chunk: Buffer) => {
          if (sent >= limit) return;
          const part = chunk.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) {
            up.destroy();
            if (action.kind === 'reset-mid-body') res.socket?.destroy();
          }
        });
        up.on('end', () => {
          if (sent < limit) res.end();
        });
      },
    );
    forward.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502).end(String(error));
      else res.socket?.destroy();
    });
    if (seen.body !== undefined) forward.end(seen.body);
    else req.pipe(forward);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      agent.destroy();
      await once(server, 'close').catch(() => {});
    },
  };
}
