// Resilience, redirects, pagination and warnings, through a fault-injecting node:http proxy placed
// between the client and the REAL registry from @task-cache/testkit.
import {
  type FaultAction,
  type FaultProxy,
  type RegistryFixture,
  type SeenRequest,
  seededBytes,
  startProxy,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOciClient, type OciClientOptions, type OciRepository } from './client.js';
import { sha256Digest } from './digest.js';
import { OciError } from './errors.js';

const BLOB = 'application/octet-stream';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p);
  return new Uint8Array(Buffer.concat(parts));
}

const descriptorOf = (bytes: Uint8Array) => ({
  mediaType: BLOB,
  digest: sha256Digest(bytes),
  size: bytes.byteLength,
});

let reg: RegistryFixture;
const proxies: FaultProxy[] = [];
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  reg = await startRegistry({ mode: 'anonymous' });
});
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const p of proxies.splice(0)) await p.close();
});
afterAll(async () => {
  await reg?.close();
});

/** A repository reached through a fault proxy in front of the anonymous registry. */
async function viaProxy(
  handle: (req: SeenRequest, n: number) => FaultAction | Promise<FaultAction>,
  options: Partial<OciClientOptions> = {},
  name = 'faults/repo',
): Promise<{ repo: OciRepository; proxy: FaultProxy }> {
  const proxy = await startProxy({ upstream: reg.baseUrl, handle });
  proxies.push(proxy);
  const client = createOciClient({
    registry: proxy.host,
    plainHttp: true,
    authFiles: null,
    env: {},
    minRetryDelayMs: 10,
    maxRetryDelayMs: 50,
    ...options,
  });
  closers.push(() => client.close());
  return { repo: client.repository(name), proxy };
}

/** Pushes directly (no proxy) so fault tests start from known content. */
async function seed(bytes: Uint8Array, name = 'faults/repo') {
  const client = createOciClient({ registry: reg.host, plainHttp: true, authFiles: null, env: {} });
  try {
    await client.repository(name).pushBlob(descriptorOf(bytes), bytes);
  } finally {
    await client.close();
  }
  return descriptorOf(bytes);
}

const count = (proxy: FaultProxy, method: string, pathPart: string) =>
  proxy.requests.filter((r) => r.method === method && r.url.includes(pathPart)).length;

describe('retries', () => {
  it('retries a 429 with Retry-After and then succeeds', async () => {
    const d = await seed(seededBytes(11, 1000));
    const { repo, proxy } = await viaProxy((req, n) =>
      req.method === 'HEAD' && n === 1
        ? { kind: 'respond', status: 429, headers: { 'retry-after': '1' } }
        : { kind: 'pass' },
    );
    expect(await repo.blobExists(d)).toBe(true);
    expect(count(proxy, 'HEAD', d.digest)).toBe(2);
  });

  it('fails at once with TOOMANYREQUESTS when Retry-After exceeds maxRetryAfterMs', async () => {
    const d = await seed(seededBytes(12, 1000));
    const { repo, proxy } = await viaProxy(
      () => ({ kind: 'respond', status: 429, headers: { 'retry-after': '3600' }, body: '' }),
      { maxRetryAfterMs: 1000 },
    );
    const error = await repo.blobExists(d).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OCI_ERR_TOO_MANY_REQUESTS', statusCode: 429, method: 'HEAD' });
    expect((error as Error).message).toContain('Retry-After 3600 s');
    expect(count(proxy, 'HEAD', d.digest)).toBe(1);
  });

  it('honours Retry-After on a blob commit PUT: beyond maxRetryAfterMs it fails at once', async () => {
    const bytes = seededBytes(24, 1000);
    const d = descriptorOf(bytes);
    const { repo, proxy } = await viaProxy(
      (req) =>
        req.method === 'PUT'
          ? { kind: 'respond', status: 429, headers: { 'retry-after': '3600' } }
          : { kind: 'pass' },
      { maxRetryAfterMs: 1000 },
    );
    await expect(repo.pushBlob(d, bytes)).rejects.toMatchObject({
      code: 'OCI_ERR_TOO_MANY_REQUESTS',
      method: 'PUT',
    });
    expect(count(proxy, 'PUT', '/blobs/uploads/')).toBe(1);
  });

  it('retries 503 up to `retries` times, then reports the status', async () => {
    const d = await seed(seededBytes(13, 1000));
    const flaky = await viaProxy((req, n) =>
      req.method === 'GET' && n <= 2 ? { kind: 'respond', status: 503 } : { kind: 'pass' },
    );
    expect(await collect(await flaky.repo.fetchBlob(d))).toEqual(seededBytes(13, 1000));
    expect(count(flaky.proxy, 'GET', d.digest)).toBe(3);

    const down = await viaProxy(() => ({ kind: 'respond', status: 503, body: 'down' }), { retries: 2 });
    const error = await down.repo.fetchManifest('latest').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OciError);
    expect(error).toMatchObject({ code: 'OCI_ERR_REGISTRY', statusCode: 503, method: 'GET' });
    expect(count(down.proxy, 'GET', '/manifests/latest')).toBe(3);
  });

  it('resumes a blob download with Range after the connection resets mid-body', async () => {
    const bytes = seededBytes(14, 3 * 1024 * 1024);
    const d = await seed(bytes);
    const { repo, proxy } = await viaProxy((req, n) =>
      req.method === 'GET' && n === 1
        ? { kind: 'reset-mid-body', afterBytes: 1024 * 1024 }
        : { kind: 'pass' },
    );
    const back = await collect(await repo.fetchBlob(d));
    expect(sha256Digest(back)).toBe(d.digest);
    const gets = proxy.requests.filter((r) => r.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]!.headers.range).toBeUndefined();
    expect(gets[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('resumes after a body stall (bodyTimeoutMs) and never hangs', async () => {
    const bytes = seededBytes(15, 2 * 1024 * 1024);
    const d = await seed(bytes);
    const { repo, proxy } = await viaProxy(
      (req, n) =>
        req.method === 'GET' && n === 1 ? { kind: 'stall-body', afterBytes: 512 * 1024 } : { kind: 'pass' },
      { bodyTimeoutMs: 1000 },
    );
    expect(sha256Digest(await collect(await repo.fetchBlob(d)))).toBe(d.digest);
    expect(count(proxy, 'GET', d.digest)).toBe(2);
  });

  it('gives up with TIMEOUT when the registry never answers', async () => {
    const { repo, proxy } = await viaProxy(() => ({ kind: 'stall' }), { headersTimeoutMs: 300, retries: 1 });
    const error = await repo.fetchManifest('latest').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OCI_ERR_TIMEOUT', method: 'GET' });
    expect(count(proxy, 'GET', '/manifests/latest')).toBe(2);
  });

  it('stops promptly when the AbortSignal fires during a stall', async () => {
    const { repo } = await viaProxy(() => ({ kind: 'stall' }));
    const controller = new AbortController();
    const pending = repo.fetchManifest('latest', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('caller gave up')), 100);
    await expect(pending).rejects.toThrow('caller gave up');
  });

  it('never retries a non-replayable (bare AsyncIterable) body, but retries a replayable one', async () => {
    const bytes = seededBytes(16, 4096);
    const d = descriptorOf(bytes);
    const { repo, proxy } = await viaProxy((req) =>
      req.method === 'PUT' ? { kind: 'respond', status: 503 } : { kind: 'pass' },
    );
    async function* once() {
      yield bytes;
    }
    const error = await repo.pushBlob(d, once()).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 503, method: 'PUT' });
    expect(count(proxy, 'PUT', '/blobs/uploads/')).toBe(1);

    let puts = 0; // upload URLs differ per session, so count PUTs here
    const flaky = await viaProxy((req) =>
      req.method === 'PUT' && ++puts === 1 ? { kind: 'respond', status: 503 } : { kind: 'pass' },
    );
    await flaky.repo.pushBlob(d, async function* () {
      yield bytes;
    });
    expect(count(flaky.proxy, 'PUT', '/blobs/uploads/')).toBe(2);
    expect(await flaky.repo.blobExists(d)).toBe(true);
  });

  it('a connection reset during an upload: a bare stream fails with NETWORK, bytes are re-pushed', async () => {
    const bytes = seededBytes(23, 64 * 1024);
    const d = descriptorOf(bytes);
    const broken = await viaProxy((req) =>
      req.method === 'PUT' ? { kind: 'reset-after-request' } : { kind: 'pass' },
    );
    async function* once() {
      yield bytes;
    }
    const error = await broken.repo.pushBlob(d, once()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OciError);
    expect(error).toMatchObject({ code: 'OCI_ERR_NETWORK', method: 'PUT' });
    expect(count(broken.proxy, 'PUT', '/blobs/uploads/')).toBe(1);

    let puts = 0;
    const flaky = await viaProxy((req) =>
      req.method === 'PUT' && ++puts === 1 ? { kind: 'reset-after-request' } : { kind: 'pass' },
    );
    await flaky.repo.pushBlob(d, bytes);
    // Not landed (the proxy never forwarded it): HEAD said so, then a new session and PUT.
    expect(count(flaky.proxy, 'HEAD', d.digest)).toBe(1);
    expect(count(flaky.proxy, 'POST', '/blobs/uploads/')).toBe(2);
    expect(count(flaky.proxy, 'PUT', '/blobs/uploads/')).toBe(2);
    expect(await flaky.repo.blobExists(d)).toBe(true);
  });

  it('HEADs the digest before retrying a blob-commit PUT that timed out (it had landed)', async () => {
    const bytes = seededBytes(17, 4096);
    const d = descriptorOf(bytes);
    let puts = 0;
    const { repo, proxy } = await viaProxy(
      (req) => (req.method === 'PUT' && ++puts === 1 ? { kind: 'forward-then-stall' } : { kind: 'pass' }),
      { headersTimeoutMs: 2000 },
    );
    await repo.pushBlob(d, bytes);
    expect(count(proxy, 'PUT', '/blobs/uploads/')).toBe(1);
    expect(count(proxy, 'HEAD', d.digest)).toBe(1);
    expect(count(proxy, 'POST', '/blobs/uploads/')).toBe(1);
  });

  it('uploads a chunked blob through a flaky PATCH', async () => {
    const bytes = seededBytes(18, 3 * 1024 * 1024 + 5);
    const d = descriptorOf(bytes);
    const { repo, proxy } = await viaProxy(
      (req, n) => (req.method === 'PATCH' && n === 2 ? { kind: 'respond', status: 502 } : { kind: 'pass' }),
      { chunkSize: 1024 * 1024, monolithicUploadMaxBytes: 1024 * 1024 },
    );
    await repo.pushBlob(d, bytes);
    expect(count(proxy, 'PATCH', '/blobs/uploads/')).toBe(5);
    expect(sha256Digest(await collect(await repo.fetchBlob(d)))).toBe(d.digest);
  });

  it('pushes a blob larger than chunkSize monolithically by default: one POST, one PUT, no PATCH', async () => {
    const bytes = seededBytes(25, 9 * 1024 * 1024 + 3);
    const d = descriptorOf(bytes);
    const { repo, proxy } = await viaProxy(() => ({ kind: 'pass' }));
    await repo.pushBlob(d, bytes);
    expect(count(proxy, 'POST', '/blobs/uploads/')).toBe(1);
    expect(count(proxy, 'PUT', '/blobs/uploads/')).toBe(1);
    expect(count(proxy, 'PATCH', '/blobs/uploads/')).toBe(0);
    expect(sha256Digest(await collect(await repo.fetchBlob(d)))).toBe(d.digest);
  });

  it('falls back to chunked PATCHes of at most chunkSize after a 413 on the monolithic PUT', async () => {
    const bytes = seededBytes(26, 3 * 1024 * 1024 + 7);
    const d = descriptorOf(bytes);
    const { repo, proxy } = await viaProxy(
      (req) =>
        req.method === 'PUT' && Number(req.headers['content-length']) > 1024 * 1024
          ? { kind: 'respond', status: 413, body: 'Request Entity Too Large' }
          : { kind: 'pass' },
      { chunkSize: 1024 * 1024 },
    );
    await repo.pushBlob(d, bytes);
    const patches = proxy.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => Number(r.headers['content-length']))).toEqual([
      1024 * 1024,
      1024 * 1024,
      1024 * 1024,
      7,
    ]);
    // The refused monolithic PUT, then the closing PUT of the chunked upload.
    expect(count(proxy, 'PUT', '/blobs/uploads/')).toBe(2);
    expect(sha256Digest(await collect(await repo.fetchBlob(d)))).toBe(d.digest);
  });

  it('a 413 on a bare stream is reported, not retried (the bytes cannot be sent again)', async () => {
    const bytes = seededBytes(27, 2048);
    const d = descriptorOf(bytes);
    const { repo, proxy } = await viaProxy((req) =>
      req.method === 'PUT' ? { kind: 'respond', status: 413 } : { kind: 'pass' },
    );
    async function* once() {
      yield bytes;
    }
    await expect(repo.pushBlob(d, once())).rejects.toMatchObject({ statusCode: 413, method: 'PUT' });
    expect(count(proxy, 'PATCH', '/blobs/uploads/')).toBe(0);
  });

  it('maxBlobPushesPerMinute: the push beyond the cap waits for the window (and its signal aborts the wait)', async () => {
    const { repo, proxy } = await viaProxy(() => ({ kind: 'pass' }), { maxBlobPushesPerMinute: 2 });
    for (const seedValue of [28, 29]) {
      const bytes = seededBytes(seedValue, 100);
      await repo.pushBlob(descriptorOf(bytes), bytes);
    }
    const third = seededBytes(30, 100);
    const controller = new AbortController();
    const pending = repo.pushBlob(descriptorOf(third), third, { signal: controller.signal });
    let settled = false;
    pending.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled).toBe(false);
    expect(count(proxy, 'POST', '/blobs/uploads/')).toBe(2);
    controller.abort(new Error('stop waiting'));
    await expect(pending).rejects.toThrow('stop waiting');
    expect(count(proxy, 'POST', '/blobs/uploads/')).toBe(2);
  });

  it('reports 405 on delete as UNSUPPORTED without retrying', async () => {
    const { repo, proxy } = await viaProxy((req) =>
      req.method === 'DELETE' ? { kind: 'respond', status: 405 } : { kind: 'pass' },
    );
    const digest = sha256Digest(new Uint8Array([1]));
    const error = await repo.deleteManifest(digest).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OCI_ERR_UNSUPPORTED', statusCode: 405, method: 'DELETE' });
    expect((error as Error).message).toMatch(/does not allow deleting manifests/);
    expect(count(proxy, 'DELETE', digest)).toBe(1);
  });
});

describe('warnings', () => {
  it('surfaces Warning headers through onWarning', async () => {
    const d = await seed(seededBytes(19, 10));
    const seen: string[] = [];
    const { repo } = await viaProxy(
      (req) =>
        req.method === 'HEAD'
          ? { kind: 'pass', addHeaders: { warning: '299 - "this registry is deprecated"' } }
          : { kind: 'pass' },
      { onWarning: (w) => seen.push(w.text) },
    );
    expect(await repo.blobExists(d)).toBe(true);
    expect(seen).toEqual(['this registry is deprecated']);
  });
});

describe('tag listing across pages', () => {
  it('follows Link headers through a paginating proxy and yields every tag once, sorted even when the pages are not', async () => {
    const name = 'faults/tags';
    const direct = createOciClient({ registry: reg.host, plainHttp: true, authFiles: null, env: {} });
    closers.push(() => direct.close());
    const repo = direct.repository(name);
    const config = new TextEncoder().encode('{}');
    await repo.pushBlob({ mediaType: EMPTY_CONFIG, digest: sha256Digest(config), size: 2 }, config);
    const manifest = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: { mediaType: EMPTY_CONFIG, digest: sha256Digest(config), size: 2 },
        layers: [],
      }),
    );
    const expected = Array.from({ length: 23 }, (_, i) => `t${String(i).padStart(2, '0')}`);
    for (const tag of expected) await repo.pushManifest(manifest, MANIFEST, { tag });

    // distribution 2.8 ignores n/last and sends no Link: the proxy paginates, in a non-sorted order.
    const order = [...expected].reverse();
    const pages: string[] = [];
    const { repo: paged } = await viaProxy(
      (req) => {
        const url = new URL(req.url, 'http://x');
        if (req.method !== 'GET' || !url.pathname.endsWith('/tags/list')) return { kind: 'pass' };
        pages.push(req.url);
        const n = Number(url.searchParams.get('n') ?? order.length);
        const last = url.searchParams.get('last');
        const start = last === null ? 0 : order.indexOf(last) + 1;
        const tags = order.slice(start, start + n);
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (start + n < order.length) {
          headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(tags.at(-1)!)}>; rel="next"`;
        }
        return { kind: 'respond', status: 200, headers, body: JSON.stringify({ name, tags }) };
      },
      { tagPageSize: 10 },
      name,
    );
    const got: string[] = [];
    for await (const t of paged.listTags()) got.push(t);
    expect(pages).toHaveLength(3);
    expect(pages[0]).toContain('n=10');
    // The store contract's order: lexical, whatever order the registry's pages came in.
    expect(got).toEqual(expected);
  });
});

describe('redirects', () => {
  let secure: RegistryFixture;
  beforeAll(async () => {
    secure = await startRegistry({ mode: 'htpasswd' });
  });
  afterAll(async () => {
    await secure?.close();
  });

  it('follows a redirect to another origin without sending it the Authorization header', async () => {
    const basic = `Basic ${Buffer.from(`${secure.username}:${secure.password}`).toString('base64')}`;
    // Origin B plays the S3 presigned URL: it holds its own access and must never see ours.
    const other = await startProxy({
      upstream: secure.baseUrl,
      ca: secure.caPem!,
      upstreamHeaders: { authorization: basic },
    });
    proxies.push(other);
    const front = await startProxy({
      upstream: secure.baseUrl,
      ca: secure.caPem!,
      handle: (req) =>
        /\/blobs\/sha256:/.test(req.url) && (req.method === 'GET' || req.method === 'HEAD')
          ? {
              kind: 'respond',
              status: 307,
              headers: { location: `${other.url}${req.url}?X-Amz-Signature=secret-signature` },
            }
          : { kind: 'pass' },
    });
    proxies.push(front);
    const client = createOciClient({
      registry: front.host,
      plainHttp: true,
      credentials: { username: secure.username, password: secure.password },
      authFiles: null,
      env: {},
    });
    closers.push(() => client.close());
    const repo = client.repository('redirect/repo');
    const bytes = seededBytes(20, 70_000);
    const d = descriptorOf(bytes);
    await repo.pushBlob(d, bytes);
    expect(await repo.blobExists(d)).toBe(true);
    expect(await collect(await repo.fetchBlob(d))).toEqual(bytes);

    // The registry origin got our credentials; the other origin got none of them.
    expect(front.requests.some((r) => r.headers.authorization === basic)).toBe(true);
    expect(other.requests.filter((r) => r.method === 'GET' || r.method === 'HEAD').length).toBe(2);
    for (const r of other.requests) expect(r.headers.authorization).toBeUndefined();
    for (const r of other.requests) expect(r.headers.cookie).toBeUndefined();
  });
});

describe('token refresh in the middle of an upload', () => {
  let tokenReg: RegistryFixture;
  beforeAll(async () => {
    tokenReg = await startRegistry({ mode: 'token' });
  });
  afterAll(async () => {
    await tokenReg?.close();
  });

  it('fetches a new token once when a PATCH is answered 401 invalid_token, and finishes the upload', async () => {
    let patches = 0;
    const proxy = await startProxy({
      upstream: tokenReg.baseUrl,
      ca: tokenReg.caPem!,
      handle: (req) =>
        req.method === 'PATCH' && ++patches === 2
          ? {
              kind: 'respond',
              status: 401,
              headers: {
                'www-authenticate': `Bearer realm="${tokenReg.tokenServer!.url}",service="${tokenReg.service}",scope="repository:mid/upload:pull,push",error="invalid_token"`,
                'content-type': 'application/json',
              },
              body: JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'token expired' }] }),
            }
          : { kind: 'pass' },
    });
    proxies.push(proxy);
    const client = createOciClient({
      registry: proxy.host,
      plainHttp: true,
      caPem: tokenReg.caPem!,
      credentials: { username: tokenReg.username, password: tokenReg.password },
      authFiles: null,
      env: {},
      chunkSize: 1024 * 1024,
      monolithicUploadMaxBytes: 1024 * 1024,
    });
    closers.push(() => client.close());
    const repo = client.repository('mid/upload');
    const bytes = seededBytes(21, 3 * 1024 * 1024);
    const d = descriptorOf(bytes);
    // Warm up: the first request learns the challenge and fetches the push token.
    await repo.pushBlob(descriptorOf(seededBytes(22, 10)), seededBytes(22, 10));
    const before = tokenReg.tokenServer!.requests;
    await repo.pushBlob(d, bytes);
    expect(tokenReg.tokenServer!.requests - before).toBe(1);
    expect(patches).toBe(4); // 3 chunks + the one replayed after the 401
    expect(sha256Digest(await collect(await repo.fetchBlob(d)))).toBe(d.digest);
  });
});

describe('connect timeout', () => {
  it('gives up with TIMEOUT when the TLS handshake never completes (connectTimeoutMs)', async () => {
    const { createServer } = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    // Accepts TCP and then says nothing: the TLS handshake hangs.
    const server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as import('node:net').AddressInfo;
    const client = createOciClient({
      authFiles: null,
      env: {},
      registry: `127.0.0.1:${port}`,
      connectTimeoutMs: 300,
      retries: 1,
      minRetryDelayMs: 1,
    });
    try {
      const error = await client
        .repository('a/b')
        .fetchManifest('latest')
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'OCI_ERR_TIMEOUT', method: 'GET' });
      expect((error as Error).message).toMatch(/connect timeout/);
      expect(sockets.length).toBe(2);
    } finally {
      await client.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
