// Unit tests of the client with undici's in-memory MockAgent (no network). Behaviour against the
// real registry is covered by registry.test.ts and faults.test.ts.
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createOciBackend, createOciClient } from './client.js';
import { sha256Digest } from './digest.js';
import { DeniedError, InsecureRedirectError, InvalidOptionError } from './errors.js';
import { DEFAULT_UPLOAD_CHUNK_SIZE } from './registry/options.js';

const agents: MockAgent[] = [];
function mock() {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  return agent;
}
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close();
});

const base = { authFiles: null, env: {}, minRetryDelayMs: 1, maxRetryDelayMs: 2 } as const;

describe('options', () => {
  it.each([
    [{ registry: 'https://reg' }, /option "registry" must be "host\[:port\]"/],
    [{ registry: 'reg', retries: -1 }, /option "retries" must be an integer >= 0/],
    [{ registry: 'reg', maxConcurrentTransfers: 0 }, /option "maxConcurrentTransfers"/],
    [{ registry: 'reg', tagPageSize: 1001 }, /option "tagPageSize" must be at most 1000/],
    [{ registry: 'reg', chunkSize: 0 }, /option "chunkSize" must be an integer >= 1/],
    [
      { registry: 'reg', monolithicUploadMaxBytes: -1 },
      /option "monolithicUploadMaxBytes" must be an integer >= 0/,
    ],
    [
      { registry: 'reg', maxBlobPushesPerMinute: 0 },
      /option "maxBlobPushesPerMinute" must be an integer >= 1/,
    ],
    [{ registry: 'reg', ca: '/nonexistent/ca.pem' }, /option "ca": cannot read CA file/],
    [{ registry: 'reg', env: { TASK_CACHE_OCI_CA: '/nonexistent/ca.pem' } }, /from TASK_CACHE_OCI_CA/],
  ])('refuses %j', (options, message) => {
    expect(() => createOciClient({ authFiles: null, ...options } as never)).toThrow(InvalidOptionError);
    expect(() => createOciClient({ authFiles: null, ...options } as never)).toThrow(message);
  });

  it('createOciBackend refuses a bad reference before any request', () => {
    expect(() => createOciBackend({ url: 'oci://h/UPPER' })).toThrow(
      expect.objectContaining({ code: 'OCI_ERR_INVALID_REFERENCE' }),
    );
  });
});

describe('protocol details', () => {
  it('refuses an HTTPS to HTTP redirect', async () => {
    const agent = mock();
    const digest = sha256Digest(new Uint8Array([1]));
    agent
      .get('https://reg.example')
      .intercept({ path: `/v2/a/blobs/${digest}`, method: 'GET' })
      .reply(307, '', { headers: { location: `http://cdn.example/blob` } });
    const client = createOciClient({ ...base, registry: 'reg.example', dispatcher: agent });
    const error = await client
      .repository('a')
      .fetchBlob({ mediaType: 'x', digest, size: 1 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InsecureRedirectError);
    expect(error).toMatchObject({ code: 'OCI_ERR_INSECURE_REDIRECT', statusCode: 307 });
  });

  it.each([
    ['ghcr.io', undefined, [4 * 1024 * 1024, 2 * 1024 * 1024]],
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com', undefined, [4 * 1024 * 1024, 2 * 1024 * 1024]],
    ['reg.example', '5242880', [5 * 1024 * 1024, 1024 * 1024]],
    // A demand beyond 32 MiB parts (each part is buffered) is ignored, not obeyed.
    ['big.example', '1073741824', [4 * 1024 * 1024, 2 * 1024 * 1024]],
  ])('chunked uploads to %s: 4 MiB PATCH bodies whatever the host, unless OCI-Chunk-Min-Length (%s) asks for more', async (host, minLength, expected) => {
    expect(DEFAULT_UPLOAD_CHUNK_SIZE).toBe(4 * 1024 * 1024);
    const agent = mock();
    const bytes = new Uint8Array(6 * 1024 * 1024).fill(7);
    const digest = sha256Digest(bytes);
    const origin = agent.get(`https://${host}`);
    origin.intercept({ path: '/v2/a/blobs/uploads/', method: 'POST' }).reply(202, '', {
      headers: {
        location: '/v2/a/blobs/uploads/s1',
        ...(minLength === undefined ? {} : { 'oci-chunk-min-length': minLength }),
      },
    });
    const patches: number[] = [];
    origin
      .intercept({ path: '/v2/a/blobs/uploads/s1', method: 'PATCH' })
      .reply(
        202,
        (opts) => {
          patches.push(Number((opts.headers as Record<string, string>)['content-length']));
          return '';
        },
        { headers: { location: '/v2/a/blobs/uploads/s1' } },
      )
      .times(2);
    origin
      .intercept({ path: (p) => p.startsWith('/v2/a/blobs/uploads/s1?digest='), method: 'PUT' })
      .reply(201, '');
    const client = createOciClient({
      ...base,
      registry: host,
      dispatcher: agent,
      monolithicUploadMaxBytes: 0,
    });
    const repo = client.repository('a');
    await repo.pushBlob({ mediaType: 'x', digest, size: bytes.byteLength }, bytes);
    expect(patches).toEqual(expected);
    expect(repo.observedCapabilities?.().minPatchBytes).toBe(minLength === '5242880' ? 5242880 : undefined);
  });

  it('uses an absolute upload Location as returned, query kept, digest merged', async () => {
    const agent = mock();
    const bytes = new TextEncoder().encode('abc');
    const digest = sha256Digest(bytes);
    agent
      .get('https://reg.example')
      .intercept({ path: '/v2/a/blobs/uploads/', method: 'POST' })
      .reply(202, '', { headers: { location: 'https://upload.example/put/1?sig=x%2By&_state=s' } });
    let putPath = '';
    agent
      .get('https://upload.example')
      .intercept({ path: (p) => p.startsWith('/put/1'), method: 'PUT' })
      .reply(201, (opts) => {
        putPath = opts.path;
        return '';
      });
    const client = createOciClient({ ...base, registry: 'reg.example', dispatcher: agent });
    await client.repository('a').pushBlob({ mediaType: 'x', digest, size: 3 }, bytes);
    expect(putPath).toBe(`/put/1?sig=x%2By&_state=s&digest=${encodeURIComponent(digest)}`);
  });

  it('accepts access_token, sends repeated scope params, Basic creds to the realm, and caches the token', async () => {
    const agent = mock();
    const reg = agent.get('https://reg.example');
    const auth = agent.get('https://auth.example');
    const challenge =
      'Bearer realm="https://auth.example/token",service="svc",scope="repository:a:pull repository:b:pull"';
    reg
      .intercept({ path: '/v2/a/manifests/t1', method: 'GET' })
      .reply(401, '', { headers: { 'www-authenticate': challenge } });
    const tokenCalls: { path: string; authorization: string | undefined }[] = [];
    auth
      .intercept({ path: (p) => p.startsWith('/token'), method: 'GET' })
      .reply(200, (opts) => {
        const headers = opts.headers as Record<string, string>;
        tokenCalls.push({ path: opts.path, authorization: headers.authorization });
        return { access_token: 'tok-1' };
      })
      .persist();
    const seen: (string | undefined)[] = [];
    reg
      .intercept({ path: (p) => p.startsWith('/v2/a/manifests/'), method: 'GET' })
      .reply(404, (opts) => {
        seen.push((opts.headers as Record<string, string>).authorization);
        return '';
      })
      .times(3);
    const client = createOciClient({
      ...base,
      registry: 'reg.example',
      dispatcher: agent,
      credentials: { username: 'robot$x', password: 'p:w' },
    });
    const repo = client.repository('a');
    expect(await repo.fetchManifest('t1')).toBeUndefined();
    expect(await repo.fetchManifest('t2')).toBeUndefined();
    expect(await repo.fetchManifest('t3')).toBeUndefined();
    expect(tokenCalls).toHaveLength(1);
    const url = new URL(tokenCalls[0]!.path, 'https://auth.example');
    expect(url.searchParams.get('service')).toBe('svc');
    expect(url.searchParams.getAll('scope')).toEqual(['repository:a:pull', 'repository:b:pull']);
    expect(tokenCalls[0]!.authorization).toBe(`Basic ${Buffer.from('robot$x:p:w').toString('base64')}`);
    expect(seen).toEqual(['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);
    expect(client.tokenRequests).toBe(1);
  });

  it('limits concurrent blob transfers to maxConcurrentTransfers', async () => {
    const agent = mock();
    const pool = agent.get('https://reg.example');
    let active = 0;
    let peak = 0;
    const bytes = new Uint8Array(4);
    const digest = sha256Digest(bytes);
    pool
      .intercept({ path: `/v2/a/blobs/${digest}`, method: 'GET' })
      .reply(200, async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 20));
        active--;
        return Buffer.from(bytes);
      })
      .persist();
    const client = createOciClient({
      ...base,
      registry: 'reg.example',
      dispatcher: agent,
      maxConcurrentTransfers: 2,
    });
    const repo = client.repository('a');
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for await (const _ of await repo.fetchBlob({ mediaType: 'x', digest, size: 4 }));
      }),
    );
    expect(peak).toBeLessThanOrEqual(2);
    expect(peak).toBeGreaterThan(0);
  });

  it('hands out no bytes from a blob whose content does not match its digest', async () => {
    const agent = mock();
    const digest = sha256Digest(new TextEncoder().encode('good'));
    agent
      .get('https://reg.example')
      .intercept({ path: `/v2/a/blobs/${digest}`, method: 'GET' })
      .reply(200, 'evil');
    const client = createOciClient({ ...base, registry: 'reg.example', dispatcher: agent });
    const got: Uint8Array[] = [];
    await expect(
      (async () => {
        for await (const p of await client.repository('a').fetchBlob({ mediaType: 'x', digest, size: 4 }))
          got.push(p);
      })(),
    ).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
    expect(got).toEqual([]);
  });

  // Regression (issue 13): the upload loop retried a 505 the transport called permanent.
  it('one retry policy: a commit PUT answered 505 is not retried, a 503 is', async () => {
    for (const [status, puts] of [
      [505, 1],
      [503, 2],
    ] as const) {
      const agent = mock();
      const pool = agent.get('https://reg.example');
      const bytes = new TextEncoder().encode('abc');
      const digest = sha256Digest(bytes);
      pool
        .intercept({ path: '/v2/a/blobs/uploads/', method: 'POST' })
        .reply(202, '', { headers: { location: '/v2/a/blobs/uploads/s' } })
        .persist();
      pool
        .intercept({ path: `/v2/a/blobs/${digest}`, method: 'HEAD' })
        .reply(404, '')
        .persist();
      let seen = 0;
      pool
        .intercept({ path: (p) => p.startsWith('/v2/a/blobs/uploads/s'), method: 'PUT' })
        .reply(() => {
          seen++;
          return { statusCode: seen === 1 ? status : 201, data: '' };
        })
        .persist();
      const client = createOciClient({ ...base, registry: 'reg.example', dispatcher: agent });
      const push = client.repository('a').pushBlob({ mediaType: 'x', digest, size: 3 }, bytes);
      if (status === 505)
        await expect(push).rejects.toMatchObject({ code: 'OCI_ERR_REGISTRY', statusCode: 505 });
      else await push;
      expect(seen).toBe(puts);
    }
  });

  it("scrubs the client's own secrets from what the registry writes in an error", async () => {
    const agent = mock();
    const password = 's3cr:et/pa ss';
    const basic = Buffer.from(`robot$x:${password}`).toString('base64');
    agent
      .get('https://reg.example')
      .intercept({ path: '/v2/a/manifests/t', method: 'GET' })
      .reply(401, '', { headers: { 'www-authenticate': 'Basic realm="r"' } });
    agent
      .get('https://reg.example')
      .intercept({ path: '/v2/a/manifests/t', method: 'GET' })
      .reply(
        403,
        JSON.stringify({
          errors: [
            {
              code: 'DENIED',
              message: `user robot$x with password ${password} (${encodeURIComponent(password)}) and header Basic ${basic} denied`,
            },
          ],
        }),
        { headers: { 'content-type': 'application/json', warning: `299 - "seen ${password}"` } },
      );
    const client = createOciClient({
      ...base,
      registry: 'reg.example',
      dispatcher: agent,
      credentials: { username: 'robot$x', password },
    });
    const error = (await client
      .repository('a')
      .fetchManifest('t')
      .catch((e: unknown) => e)) as DeniedError;
    expect(error).toBeInstanceOf(DeniedError);
    expect(error.registryCode).toBe('DENIED');
    expect(error.message).toContain('user robot$x with password *** (***) and header Basic *** denied');
    for (const text of [error.message, JSON.stringify(error.warnings)]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(encodeURIComponent(password));
      expect(text).not.toContain(basic);
    }
  });
});
