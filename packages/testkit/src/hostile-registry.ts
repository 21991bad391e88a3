/**
 * A hostile registry (issue 16): a `node:http` server on loopback that speaks just enough of the
 * distribution API to lure a client into the failure it is built for. Every behaviour a real
 * registry, a broken proxy or an attacker who can push a tag can show, and that the real
 * `docker-registry` fixture cannot be made to show:
 *
 * - `slow-body`: every answer (manifest, blob, token, error) sent one byte per second;
 * - `slow-error`: every request answered 503 (retryable) with an error body sent one byte a second;
 * - `endless-error`: every request answered 400 with an endless body (64 KiB every 20 ms);
 * - `endless-pages`: a tag list whose `Link: rel=next` always names a new page;
 * - `echo-auth`: asks for Basic credentials, then answers every request with an error whose
 *   message, detail and `Warning` header echo the `Authorization` it was sent (raw, decoded,
 *   percent-encoded);
 * - `huge-token`: a Bearer challenge whose token realm answers 200 with a 1.5 GB JSON body;
 * - `huge-index`: a tag that resolves to an index of 1,500 children of 4 MiB each;
 * - `huge-config`: a tag that resolves to a manifest whose config is 50 MB.
 *
 * Nothing is buffered: the large bodies are generated as they are sent. For a registry that
 * accepts connections and never answers, use {@link startBlackHole}.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the hostile registry does; see the module comment. */
export type HostileMode =
  | 'slow-body'
  | 'slow-error'
  | 'endless-error'
  | 'endless-pages'
  | 'echo-auth'
  | 'huge-token'
  | 'huge-index'
  | 'huge-config';

/** Options of {@link startHostileRegistry}. */
export interface HostileRegistryOptions {
  mode: HostileMode;
  /**
   * `huge-index`: number of children listed.
   * @default 1500
   */
  children?: number;
  /**
   * `huge-index`: size of each child manifest, in bytes.
   * @default 4194304 (4 MiB)
   */
  childSize?: number;
  /**
   * `huge-config`: size of the config, in bytes.
   * @default 50000000
   */
  configSize?: number;
  /**
   * `huge-token`: size of the token answer (sent chunked, without `Content-Length`).
   * @default 1500000000
   */
  tokenSize?: number;
}

/** A running hostile registry. */
export interface HostileRegistry {
  /** `127.0.0.1:PORT` (plain HTTP). */
  readonly host: string;
  /** Requests answered so far. */
  readonly requests: number;
  /** Bytes of response bodies sent so far. */
  readonly bytesSent: number;
  /** Every `Authorization` header received (the test checks none of them leaks). */
  readonly authorizations: readonly string[];
  /** Closes the listener and every connection; idempotent. */
  close(): Promise<void>;
}

const JSON_ERRORS = 'application/json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
// NOTE: the documents look like task-cache entries (artifactType, config media type), so a
// reader gets past the format checks to the part the attack is about.
const ARTIFACT = 'application/vnd.task-cache.entry.v1';
const CONFIG = 'application/vnd.task-cache.entry.config.v1+json';
const digestOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
/** A digest for the i-th made-up blob (never fetched successfully: its bytes do not match). */
const fakeDigest = (i: number) => digestOf(`hostile-${i}`);

/** Starts a hostile registry on `127.0.0.1` (random port). */
export async function startHostileRegistry(options: HostileRegistryOptions): Promise<HostileRegistry> {
  const { mode } = options;
  const children = options.children ?? 1500;
  const childSize = options.childSize ?? 4 * 1024 * 1024;
  const configSize = options.configSize ?? 50_000_000;
  const tokenSize = options.tokenSize ?? 1_500_000_000;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const authorizations: string[] = [];
  let requests = 0;
  let bytesSent = 0;
  let host = '';

  const every = (ms: number, fn: () => boolean) => {
    const t = setInterval(() => {
      if (!fn()) {
        clearInterval(t);
        timers.delete(t);
      }
    }, ms);
    timers.add(t);
  };
  /** Writes `body` one byte per second. */
  const trickle = (res: http.ServerResponse, body: string) => {
    let i = 0;
    every(1000, () => {
      if (res.destroyed || i >= body.length) {
        if (!res.destroyed) res.end();
        return false;
      }
      bytesSent += 1;
      res.write(body[i++]);
      return true;
    });
  };
  /** Writes `piece` every `ms` until the client goes away or `limit` bytes were sent. */
  const flood = (res: http.ServerResponse, piece: Buffer, ms: number, limit = Number.POSITIVE_INFINITY) => {
    let sent = 0;
    const pump = () => {
      while (!res.destroyed && sent < limit) {
        const n = Math.min(piece.length, limit - sent);
        sent += n;
        bytesSent += n;
        if (!res.write(n === piece.length ? piece : piece.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
        if (ms > 0) {
          every(ms, () => {
            pump();
            return false;
          });
          return;
        }
      }
      if (!res.destroyed && sent >= limit) res.end();
    };
    pump();
  };
  const json = (
    res: http.ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    const text = JSON.stringify(body);
    bytesSent += Buffer.byteLength(text);
    res.writeHead(status, { 'content-type': JSON_ERRORS, ...headers }).end(text);
  };
  /** A JSON document padded with spaces to exactly `size` bytes, streamed. */
  const padded = (res: http.ServerResponse, mediaType: string, doc: object, size: number) => {
    const head = JSON.stringify(doc).slice(0, -1);
    const tail = '}';
    res.writeHead(200, { 'content-type': mediaType, 'content-length': String(size) });
    res.write(head);
    bytesSent += head.length;
    const pad = Buffer.alloc(64 * 1024, ' ');
    const padTotal = Math.max(0, size - head.length - tail.length);
    let sent = 0;
    const pump = () => {
      while (!res.destroyed && sent < padTotal) {
        const n = Math.min(pad.length, padTotal - sent);
        sent += n;
        bytesSent += n;
        if (!res.write(n === pad.length ? pad : pad.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end(tail);
    };
    pump();
  };

  const server = http.createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const auth = req.headers.authorization;
    if (auth) authorizations.push(auth);
    req.resume();
    res.on('error', () => {});
    switch (mode) {
      case 'slow-body': {
        const body = JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, layers: [], config: {} });
        res.writeHead(200, { 'content-type': MANIFEST, 'content-length': String(body.length) });
        trickle(res, body);
        return;
      }
      case 'slow-error': {
        const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'slowly failing' }] });
        res.writeHead(503, { 'content-type': JSON_ERRORS, 'content-length': String(body.length) });
        trickle(res, body);
        return;
      }
      case 'endless-error': {
        res.writeHead(400, { 'content-type': JSON_ERRORS });
        flood(res, Buffer.alloc(64 * 1024, '{'), 20);
        return;
      }
      case 'endless-pages': {
        if (!path.endsWith('/tags/list')) return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] });
        const page = Number(url.searchParams.get('page') ?? '0');
        const name = path.slice('/v2/'.length, -'/tags/list'.length);
        return json(
          res,
          200,
          { name, tags: [`t${page}`] },
          { link: `</v2/${name}/tags/list?n=1000&page=${page + 1}>; rel="next"` },
        );
      }
      case 'echo-auth': {
        if (!auth) {
          return json(
            res,
            401,
            { errors: [{ code: 'UNAUTHORIZED', message: 'log in' }] },
            {
              'www-authenticate': 'Basic realm="hostile"',
            },
          );
        }
        const decoded = auth.startsWith('Basic ')
          ? Buffer.from(auth.slice(6), 'base64').toString('utf8')
          : '';
        const echo = `you sent "${auth}" (${decoded}; ${encodeURIComponent(decoded)})`;
        return json(
          res,
          400,
          { errors: [{ code: 'DENIED', message: echo, detail: { authorization: auth, decoded } }] },
          { warning: `299 - "${echo.replace(/"/g, "'")}"` },
        );
      }
      case 'huge-token': {
        if (path === '/token') {
          // No Content-Length: the client must cap what it reads as it streams, not trust a header.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"token":"');
          flood(res, Buffer.alloc(64 * 1024, 'a'), 0, tokenSize - 12);
          return;
        }
        if (auth?.startsWith('Bearer ')) return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] });
        return json(
          res,
          401,
          { errors: [{ code: 'UNAUTHORIZED' }] },
          {
            'www-authenticate': `Bearer realm="http://${host}/token",service="hostile"`,
          },
        );
      }
      case 'huge-index': {
        const m = /^\/v2\/(.+)\/manifests\/(.+)$/.exec(path);
        if (!m) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
        const ref = m[2]!;
        if (!ref.startsWith('sha256:')) {
          const manifests = Array.from({ length: children }, (_, i) => ({
            mediaType: MANIFEST,
            digest: fakeDigest(i),
            size: childSize,
          }));
          return json(
            res,
            200,
            { schemaVersion: 2, mediaType: INDEX, artifactType: ARTIFACT, manifests },
            { 'content-type': INDEX },
          );
        }
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': MANIFEST, 'content-length': String(childSize) }).end();
          return;
        }
        return padded(
          res,
          MANIFEST,
          { schemaVersion: 2, mediaType: MANIFEST, artifactType: ARTIFACT },
          childSize,
        );
      }
      case 'huge-config': {
        const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(path);
        if (!m) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
        if (m[2] === 'manifests') {
          const body = {
            schemaVersion: 2,
            mediaType: MANIFEST,
            artifactType: ARTIFACT,
            config: {
              mediaType: CONFIG,
              digest: fakeDigest(0),
              size: configSize,
            },
            layers: [],
          };
          return json(res, 200, body, { 'content-type': MANIFEST });
        }
        return padded(res, 'application/octet-stream', {}, configSize);
      }
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;
  return {
    host,
    get requests() {
      return requests;
    },
    get bytesSent() {
      return bytesSent;
    },
    authorizations,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        timers.clear();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
