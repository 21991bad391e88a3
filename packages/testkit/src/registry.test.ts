import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimpleResponse, simpleRequest } from './http.js';
import { type RegistryFixture, startRegistry } from './registry.js';

const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const basic = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;

/** Client side of one registry fixture: every request carries `auth` (an Authorization value). */
function client(registry: RegistryFixture, auth?: string) {
  const req = (
    path: string,
    init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
  ) =>
    simpleRequest(new URL(path, registry.baseUrl), {
      ...init,
      ca: registry.caPem,
      headers: { ...(auth ? { authorization: auth } : {}), ...init.headers },
    });
  /** Monolithic upload: POST an upload session, PUT the bytes with `?digest=`. */
  const pushBlob = async (repo: string, data: Buffer | string): Promise<SimpleResponse> => {
    const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) return start;
    const location = new URL(String(start.headers.location), registry.baseUrl);
    location.searchParams.set('digest', sha256(data));
    return await req(location.toString(), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
    });
  };
  /** Pushes a config + one layer + an image manifest tagged `tag`; returns digests and bytes. */
  const pushImage = async (repo: string, tag: string, layer: string) => {
    const config = Buffer.from('{}');
    expect((await pushBlob(repo, config)).status).toBe(201);
    expect((await pushBlob(repo, layer)).status).toBe(201);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256(config),
          size: config.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            digest: sha256(layer),
            size: Buffer.byteLength(layer),
          },
        ],
      }),
    );
    const put = await req(`/v2/${repo}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(put.status, put.text()).toBe(201);
    return {
      manifest,
      manifestDigest: sha256(manifest),
      layerDigest: sha256(layer),
      configDigest: sha256(config),
    };
  };
  return { req, pushBlob, pushImage };
}

/** Bearer token from the fixture's token server for `scopes`, as a registry client would get it. */
async function fetchToken(registry: RegistryFixture, scopes: string[], auth?: string) {
  const url = new URL(registry.tokenServer!.url);
  url.searchParams.set('service', registry.service!);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  return await simpleRequest(url, { ca: registry.caPem, headers: auth ? { authorization: auth } : {} });
}

const decodeJwt = (token: string) => {
  const [header, claims, signature] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(header!, 'base64url').toString('utf8')),
    claims: JSON.parse(Buffer.from(claims!, 'base64url').toString('utf8')),
    signature,
  };
};

/** Path of a blob's data file in distribution's filesystem storage layout. */
const blobDataPath = (registry: RegistryFixture, digest: string) => {
  const hex = digest.slice('sha256:'.length);
  return join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
};

describe('startRegistry: anonymous (plain HTTP)', () => {
  let registry: RegistryFixture;
  beforeAll(async () => {
    registry = await startRegistry({ mode: 'anonymous' });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('answers GET /v2/ with 200 without credentials over plain HTTP', async () => {
    expect(registry.baseUrl).toBe(`http://${registry.host}`);
    expect(registry.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(registry.caFile).toBeUndefined();
    expect(registry.username).toBe('');
    expect(registry.tokenServer).toBeUndefined();
    const res = await client(registry).req('/v2/');
    expect(res.status).toBe(200);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('builds oci:// URLs with plain-http=true', () => {
    expect(registry.ociUrl('team/app:v1')).toBe(`oci://${registry.host}/team/app:v1?plain-http=true`);
  });

  it('stop makes it unreachable; start brings it back on the same port with its storage', async () => {
    const c = client(registry);
    await c.pushImage('persist/me', 'v1', 'layer kept across restarts');
    const { host } = registry;
    await registry.stop();
    expect(registry.pid).toBeUndefined();
    await expect(c.req('/v2/')).rejects.toThrow(/ECONNREFUSED/);
    await registry.start();
    expect(registry.host).toBe(host);
    const head = await c.req('/v2/persist/me/manifests/v1', {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(head.status).toBe(200);
  });
});

describe('startRegistry: htpasswd (TLS + Basic)', () => {
  let registry: RegistryFixture;
  beforeAll(async () => {
    registry = await startRegistry({ mode: 'htpasswd' });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('defaults to a Harbor-robot-like user whose password contains ":"', () => {
    expect(registry.username).toBe('robot$task-cache+ci');
    expect(registry.password).toContain(':');
    expect(registry.baseUrl).toBe(`https://${registry.host}`);
    expect(registry.caPem).toContain('-----BEGIN CERTIFICATE-----');
    expect(readFileSync(registry.caFile!, 'utf8')).toBe(registry.caPem);
    expect(registry.ociUrl('a/b:t')).toBe(
      `oci://${registry.host}/a/b:t?ca=${encodeURIComponent(registry.caFile!)}`,
    );
  });

  it('answers GET /v2/ with 401 + Basic challenge, 401 for a wrong password, 200 with the credentials', async () => {
    const anonymous = await client(registry).req('/v2/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic realm="/);
    const wrong = await client(registry, basic(registry.username, `${registry.password}x`)).req('/v2/');
    expect(wrong.status).toBe(401);
    const ok = await client(registry, basic(registry.username, registry.password)).req('/v2/');
    expect(ok.status).toBe(200);
  });

  it('serves TLS that only the private CA verifies', async () => {
    await expect(simpleRequest(`${registry.baseUrl}/v2/`)).rejects.toThrow(/certificate/i);
  });

  it('round-trips an OCI manifest with a blob through PUT and GET over TLS', async () => {
    const c = client(registry, basic(registry.username, registry.password));
    const pushed = await c.pushImage('team/roundtrip', 'v1', 'hello layer bytes');
    const byTag = await c.req('/v2/team/roundtrip/manifests/v1', {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(byTag.status).toBe(200);
    expect(byTag.body.equals(pushed.manifest)).toBe(true);
    expect(byTag.headers['docker-content-digest']).toBe(pushed.manifestDigest);
    expect(byTag.headers['content-type']).toBe('application/vnd.oci.image.manifest.v1+json');
    const byDigest = await c.req(`/v2/team/roundtrip/manifests/${pushed.manifestDigest}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(byDigest.body.equals(pushed.manifest)).toBe(true);
    const blob = await c.req(`/v2/team/roundtrip/blobs/${pushed.layerDigest}`);
    expect(blob.status).toBe(200);
    expect(blob.text()).toBe('hello layer bytes');
  });

  it('garbageCollect removes an unreferenced blob, keeps a referenced one, and restarts the registry', async () => {
    const c = client(registry, basic(registry.username, registry.password));
    const kept = await c.pushImage('team/gc', 'v1', 'referenced layer');
    const orphan = 'unreferenced blob bytes';
    expect((await c.pushBlob('team/gc', orphan)).status).toBe(201);
    expect(existsSync(blobDataPath(registry, sha256(orphan)))).toBe(true);
    const pidBefore = registry.pid;

    const output = await registry.garbageCollect();

    expect(output).toContain(`blob eligible for deletion: ${sha256(orphan)}`);
    expect(output).not.toContain(`eligible for deletion: ${kept.layerDigest}`);
    expect(registry.pid).toBeDefined();
    expect(registry.pid).not.toBe(pidBefore);
    expect(existsSync(blobDataPath(registry, sha256(orphan)))).toBe(false);
    expect(existsSync(blobDataPath(registry, kept.layerDigest))).toBe(true);
    expect((await c.req(`/v2/team/gc/blobs/${sha256(orphan)}`, { method: 'HEAD' })).status).toBe(404);
    const layer = await c.req(`/v2/team/gc/blobs/${kept.layerDigest}`);
    expect(layer.status).toBe(200);
    expect(layer.text()).toBe('referenced layer');
  });

  it('garbageCollect({ deleteUntagged }) also removes the blobs of an untagged manifest; a stopped registry stays stopped', async () => {
    const c = client(registry, basic(registry.username, registry.password));
    const image = await c.pushImage('team/untagged', 'v1', 'layer of an untagged manifest');
    expect(
      (await c.req(`/v2/team/untagged/manifests/${image.manifestDigest}`, { method: 'DELETE' })).status,
    ).toBe(202);
    // Deleting by digest removed the tag too; re-push the manifest by digest so it is untagged but present.
    const repush = await c.req(`/v2/team/untagged/manifests/${image.manifestDigest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: image.manifest,
    });
    expect(repush.status).toBe(201);
    await registry.stop();
    const plain = await registry.garbageCollect();
    expect(registry.pid).toBeUndefined();
    expect(plain).not.toContain(`eligible for deletion: ${image.layerDigest}`);
    expect(existsSync(blobDataPath(registry, image.layerDigest))).toBe(true);
    const untagged = await registry.garbageCollect({ deleteUntagged: true });
    expect(untagged).toContain(`eligible for deletion: ${image.layerDigest}`);
    expect(existsSync(blobDataPath(registry, image.layerDigest))).toBe(false);
    await registry.start();
    expect((await c.req('/v2/')).status).toBe(200);
  });
});

describe('startRegistry: token (TLS + Bearer from the token server)', () => {
  let registry: RegistryFixture;
  const reader = {
    username: 'robot$reader+ro',
    password: 'rea:der pass',
    access: { '*': ['pull' as const] },
  };
  const scoped = {
    username: 'scoped',
    password: 'sco:ped',
    access: { 'readonly/*': ['pull' as const], 'rw/*': ['*' as const] },
  };
  beforeAll(async () => {
    registry = await startRegistry({
      mode: 'token',
      tokenTtlSeconds: 120,
      users: [{ username: 'robot$task-cache+ci', password: 's3cr:et/pa ss' }, reader, scoped],
    });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('answers GET /v2/ with 401 + Bearer realm/service challenge', async () => {
    const res = await client(registry).req('/v2/');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(
      `Bearer realm="${registry.tokenServer!.url}",service="${registry.service}"`,
    );
    expect(registry.tokenServer!.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/token$/);
  });

  it('issues an RS256 JWT (x5c, string aud, access) for valid Basic credentials; the registry accepts it', async () => {
    const before = registry.tokenServer!.requests;
    const res = await fetchToken(
      registry,
      ['repository:team/app:pull,push'],
      basic('robot$task-cache+ci', 's3cr:et/pa ss'),
    );
    expect(res.status).toBe(200);
    expect(registry.tokenServer!.requests).toBe(before + 1);
    const body = res.json() as { token: string; access_token: string; expires_in: number; issued_at: string };
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(120);
    expect(Number.isNaN(Date.parse(body.issued_at))).toBe(false);
    const { header, claims } = decodeJwt(body.token);
    expect(header.alg).toBe('RS256');
    expect(header.x5c).toHaveLength(1);
    expect(typeof claims.aud).toBe('string');
    expect(claims.aud).toBe(registry.service);
    expect(claims.sub).toBe('robot$task-cache+ci');
    expect(claims.exp - claims.iat).toBe(120);
    expect(claims.jti).toEqual(expect.any(String));
    expect(claims.access).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);

    const c = client(registry, `Bearer ${body.token}`);
    expect((await c.req('/v2/')).status).toBe(200);
    const blob = await c.pushBlob('team/app', 'pushed with a token');
    expect(blob.status).toBe(201);
    expect((await c.req(`/v2/team/app/blobs/${sha256('pushed with a token')}`)).text()).toBe(
      'pushed with a token',
    );
  });

  it('round-trips a manifest with a blob over TLS with a token', async () => {
    const res = await fetchToken(
      registry,
      ['repository:team/tok:pull,push'],
      basic(registry.username, registry.password),
    );
    const c = client(registry, `Bearer ${(res.json() as { token: string }).token}`);
    const pushed = await c.pushImage('team/tok', 'latest', 'token layer');
    const got = await c.req('/v2/team/tok/manifests/latest', {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(got.body.equals(pushed.manifest)).toBe(true);
  });

  it('exposes the same request count on its /stats endpoint', async () => {
    const stats = await simpleRequest(new URL('/stats', registry.tokenServer!.url), { ca: registry.caPem });
    expect(stats.json()).toEqual({ requests: registry.tokenServer!.requests });
    expect(registry.tokenServer!.pid).toBeGreaterThan(0);
  });

  it('refuses a wrong password (401) and an unknown user (401), counting the requests', async () => {
    const before = registry.tokenServer!.requests;
    const wrong = await fetchToken(
      registry,
      ['repository:team/app:pull'],
      basic('robot$task-cache+ci', 'nope'),
    );
    expect(wrong.status).toBe(401);
    expect(wrong.text()).not.toContain('token');
    const unknown = await fetchToken(
      registry,
      ['repository:team/app:pull'],
      basic('nobody', 's3cr:et/pa ss'),
    );
    expect(unknown.status).toBe(401);
    expect(registry.tokenServer!.requests).toBe(before + 2);
  });

  it('gives anonymous requests a token with no access, so a push gets insufficient_scope', async () => {
    const res = await fetchToken(registry, ['repository:team/app:pull,push']);
    expect(res.status).toBe(200);
    const { token } = res.json() as { token: string };
    expect(decodeJwt(token).claims.access).toEqual([]);
    const c = client(registry, `Bearer ${token}`);
    expect((await c.req('/v2/')).status).toBe(200);
    const push = await c.req('/v2/team/app/blobs/uploads/', { method: 'POST' });
    expect(push.status).toBe(401);
    expect(push.headers['www-authenticate']).toContain('error="insufficient_scope"');
  });

  it('grants a pull-only user reduced access; the registry then answers insufficient_scope on push', async () => {
    const res = await fetchToken(
      registry,
      ['repository:team/app:pull,push'],
      basic(reader.username, reader.password),
    );
    expect(res.status).toBe(200);
    const { token } = res.json() as { token: string };
    expect(decodeJwt(token).claims.access).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull'] },
    ]);
    const c = client(registry, `Bearer ${token}`);
    const pull = await c.req(`/v2/team/app/blobs/${sha256('pushed with a token')}`);
    expect(pull.status).toBe(200);
    const push = await c.req('/v2/team/app/blobs/uploads/', { method: 'POST' });
    expect(push.status).toBe(401);
    expect(push.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(push.headers['www-authenticate']).toMatch(/scope="repository:team\/app:(push,pull|pull,push)"/);
  });

  it('matches access globs per repository and "*" actions', async () => {
    const res = await fetchToken(
      registry,
      ['repository:readonly/x:pull,push', 'repository:rw/y:pull,push,delete', 'repository:other:pull'],
      basic(scoped.username, scoped.password),
    );
    const { token } = res.json() as { token: string };
    expect(decodeJwt(token).claims.access).toEqual([
      { type: 'repository', name: 'readonly/x', actions: ['pull'] },
      { type: 'repository', name: 'rw/y', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'other', actions: [] },
    ]);
    const c = client(registry, `Bearer ${token}`);
    expect((await c.pushBlob('rw/y', 'rw bytes')).status).toBe(201);
    const denied = await c.pushBlob('readonly/x', 'ro bytes');
    expect(denied.status).toBe(401);
    expect(denied.headers['www-authenticate']).toContain('error="insufficient_scope"');
  });
});

describe('startRegistry lifecycle', () => {
  it('records every PID (registry, token server, GC) and leaves none alive after close (idempotent)', async () => {
    const previous = process.env.TASK_CACHE_TEST_PIDFILE;
    const pidfile = join(tmpdir(), `testkit-registry-pids-${process.pid}-${Date.now()}`);
    process.env.TASK_CACHE_TEST_PIDFILE = pidfile;
    try {
      const registry = await startRegistry({ mode: 'token' });
      const [firstRegistry, tokenServer] = [registry.pid!, registry.tokenServer!.pid];
      // GC on a registry that never stored anything works too.
      await registry.garbageCollect();
      const secondRegistry = registry.pid!;
      const pids = [firstRegistry, tokenServer, secondRegistry];
      expect(pids.map(isAlive)).toEqual([false, true, true]);
      await registry.close();
      await registry.close();
      const lines = readFileSync(pidfile, 'utf8').trim().split('\n');
      const names = lines.map((line) => line.split(' ')[1]);
      expect(names).toEqual(['token-server', 'docker-registry', 'docker-registry-gc', 'docker-registry']);
      const recorded = lines.map((line) => Number(line.split(' ')[0]));
      expect(recorded).toEqual(expect.arrayContaining(pids));
      expect(recorded.filter(isAlive)).toEqual([]);
      expect(existsSync(registry.storageDir)).toBe(false);
    } finally {
      if (previous === undefined) delete process.env.TASK_CACHE_TEST_PIDFILE;
      else {
        process.env.TASK_CACHE_TEST_PIDFILE = previous;
        if (existsSync(pidfile)) appendFileSync(previous, readFileSync(pidfile));
      }
      rmSync(pidfile, { force: true });
    }
  });

  it('rejects bad options with a typed error naming the field', async () => {
    await expect(startRegistry({ mode: 'basic' as never })).rejects.toMatchObject({
      code: 'TESTKIT_ERR_INVALID_OPTION',
      message: expect.stringContaining('options.mode'),
    });
    await expect(
      startRegistry({ mode: 'htpasswd', users: [{ username: 'a:b', password: 'x' }] }),
    ).rejects.toMatchObject({
      code: 'TESTKIT_ERR_INVALID_OPTION',
      message: expect.stringContaining('options.users[0].username'),
    });
    await expect(startRegistry({ mode: 'token', tokenTtlSeconds: 0 })).rejects.toMatchObject({
      code: 'TESTKIT_ERR_INVALID_OPTION',
      message: expect.stringContaining('options.tokenTtlSeconds'),
    });
  });
});
