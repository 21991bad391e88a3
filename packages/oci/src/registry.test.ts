// Integration tests against the real CNCF distribution registry (docker-registry 2.8.2) from
// @task-cache/testkit, in its three set-ups: anonymous HTTP, TLS + private CA + htpasswd, token.
import {
  type RegistryFixture,
  seededBytes,
  seededDigest,
  seededStream,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOciBackend, createOciClient, type OciClient, type OciRepository } from './client.js';
import { sha256Digest } from './digest.js';
import { OciError } from './errors.js';

const BLOB = 'application/octet-stream';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p);
  return new Uint8Array(Buffer.concat(parts));
}

async function pushSmall(repo: OciRepository, bytes: Uint8Array, mediaType = BLOB) {
  const d = { mediaType, digest: sha256Digest(bytes), size: bytes.byteLength };
  await repo.pushBlob(d, bytes);
  return d;
}

function manifestFor(
  layers: { mediaType: string; digest: string; size: number }[],
  config: { digest: string; size: number },
) {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: 'application/vnd.task-cache.entry.v1',
      config: { mediaType: EMPTY_CONFIG, digest: config.digest, size: config.size },
      layers,
    }),
  );
}

const setups = ['anonymous', 'htpasswd', 'token'] as const;

describe.each(setups)('registry round trips (%s)', (mode) => {
  let reg: RegistryFixture;
  let repo: OciRepository;
  let client: OciClient;

  beforeAll(async () => {
    reg = await startRegistry({ mode });
    if (mode !== 'anonymous') {
      // The fixture's default account is a Harbor-style robot with `$` and a password with `:`.
      expect(reg.username).toContain('$');
      expect(reg.password).toContain(':');
    }
    const backend = createOciBackend({
      url: reg.ociUrl('team/cache:latest'),
      ...(mode === 'anonymous' ? {} : { credentials: { username: reg.username, password: reg.password } }),
      authFiles: null,
      env: {},
    });
    repo = backend;
    client = backend.client;
  });
  afterAll(async () => {
    await repo?.close();
    await reg?.close();
  });

  it.each([0, 1, 5 * 1024 * 1024])('pushes and fetches a %d-byte blob', async (size) => {
    const bytes = seededBytes(size + 1, size);
    const d = await pushSmall(repo, bytes);
    expect(await repo.blobExists(d)).toBe(true);
    const back = await collect(await repo.fetchBlob(d));
    expect(back.byteLength).toBe(size);
    expect(sha256Digest(back)).toBe(d.digest);
  });

  it('digestVerified skips the client hash, and the registry still refuses a wrong digest', async () => {
    const bytes = seededBytes(31, 4096);
    const wrong = { mediaType: BLOB, digest: sha256Digest(seededBytes(32, 4096)), size: 4096 };
    // Without the option the client refuses before any request.
    await expect(repo.pushBlob(wrong, bytes)).rejects.toMatchObject({ code: 'OCI_ERR_DIGEST_MISMATCH' });
    // With it the bytes go out, and the registry's own check refuses them: nothing is stored.
    const err = await repo.pushBlob(wrong, bytes, { digestVerified: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OCI_ERR_DIGEST_INVALID', method: 'PUT', statusCode: 400 });
    expect(await repo.blobExists(wrong)).toBe(false);
    const right = { mediaType: BLOB, digest: sha256Digest(bytes), size: 4096 };
    await repo.pushBlob(right, bytes, { digestVerified: true });
    expect(await repo.blobExists(right)).toBe(true);
  });

  it('reports a missing blob as absent, and fetching it as BLOB_UNKNOWN', async () => {
    const d = { mediaType: BLOB, digest: sha256Digest(new TextEncoder().encode(`missing-${mode}`)), size: 5 };
    expect(await repo.blobExists(d)).toBe(false);
    await expect(repo.fetchBlob(d)).rejects.toMatchObject({ code: 'OCI_ERR_BLOB_UNKNOWN', statusCode: 404 });
  });

  it('streams a 100 MiB blob up (chunked) and down without holding it in memory', async () => {
    const size = 100 * 1024 * 1024;
    const digest = await seededDigest(7, size);
    const d = { mediaType: BLOB, digest, size };
    let peak = 0;
    const sample = () => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    };
    const before = process.memoryUsage().arrayBuffers;
    const timer = setInterval(sample, 20);
    try {
      await repo.pushBlob(d, () => seededStream(7, size));
      let seen = 0;
      for await (const piece of await repo.fetchBlob(d)) {
        seen += piece.byteLength;
        sample();
      }
      expect(seen).toBe(size);
    } finally {
      clearInterval(timer);
    }
    // Holding the blob would add >= 100 MiB of buffers. Streaming keeps an 8 MiB upload chunk and
    // socket buffers; the rest of the margin is garbage the GC has not collected yet (GC timing
    // varies with machine load, so the bound is "less than the blob", not a tight figure).
    const grownMiB = (peak - before) / 2 ** 20;
    expect(grownMiB, `arrayBuffers grew by ${grownMiB.toFixed(1)} MiB`).toBeLessThan(90);
  });

  it('round-trips an image manifest by tag and by digest, byte-exact, with HEAD resolve', async () => {
    const layer = await pushSmall(repo, seededBytes(99, 1000));
    const config = await pushSmall(repo, new TextEncoder().encode('{}'), EMPTY_CONFIG);
    // Unusual whitespace proves the bytes are stored as sent, not re-serialised.
    const bytes = new TextEncoder().encode(`${new TextDecoder().decode(manifestFor([layer], config))}  \n`);
    const pushed = await repo.pushManifest(bytes, MANIFEST, { tag: 'v1' });
    expect(pushed).toEqual({ mediaType: MANIFEST, digest: sha256Digest(bytes), size: bytes.byteLength });
    const byTag = await repo.fetchManifest('v1');
    expect(byTag?.descriptor).toEqual(pushed);
    expect(Buffer.from(byTag!.bytes).equals(Buffer.from(bytes))).toBe(true);
    const byDigest = await repo.fetchManifest(pushed.digest);
    expect(byDigest?.descriptor.digest).toBe(pushed.digest);
    expect(await repo.resolveManifest('v1')).toEqual(pushed);
    expect(await repo.fetchManifest('no-such-tag')).toBeUndefined();
    expect(await repo.resolveManifest('no-such-tag')).toBeUndefined();

    // tag() points a second tag at it; an image index referencing it round-trips too.
    await repo.tag(pushed, 'v1-alias');
    expect((await repo.resolveManifest('v1-alias'))?.digest).toBe(pushed.digest);
    const index = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [pushed] }),
    );
    const idx = await repo.pushManifest(index, INDEX, { tag: 'index' });
    const fetchedIndex = await repo.fetchManifest('index');
    expect(fetchedIndex?.descriptor).toEqual(idx);
    const tags: string[] = [];
    for await (const t of repo.listTags()) tags.push(t);
    expect(tags.sort()).toEqual(['index', 'v1', 'v1-alias']);
  });

  it('reports the missing blobs of a manifest push (MANIFEST_BLOB_UNKNOWN)', async () => {
    const config = await pushSmall(repo, new TextEncoder().encode('{}'), EMPTY_CONFIG);
    const absent = {
      mediaType: BLOB,
      digest: sha256Digest(new TextEncoder().encode(`absent-${mode}`)),
      size: 9,
    };
    const bytes = manifestFor([absent], config);
    const error = await repo.pushManifest(bytes, MANIFEST, { tag: 'broken' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OciError);
    expect(error).toMatchObject({ code: 'OCI_ERR_MANIFEST_BLOB_UNKNOWN', method: 'PUT', statusCode: 400 });
    expect((error as OciError).missingDigests).toEqual([absent.digest]);
  });

  it('mounts a blob from another repository of the same registry', async () => {
    const bytes = seededBytes(4242, 2048);
    const d = await pushSmall(repo, bytes);
    const other = client.repository('team/other');
    await other.pushBlob(
      d,
      () => {
        throw new Error('the mount should have made the upload unnecessary');
      },
      { mountFrom: ['team/cache'] },
    );
    expect(await other.blobExists(d)).toBe(true);
  });

  it('deletes a manifest by digest', async () => {
    const config = await pushSmall(repo, new TextEncoder().encode('{}'), EMPTY_CONFIG);
    const bytes = manifestFor([], config);
    const pushed = await repo.pushManifest(bytes, MANIFEST, { tag: 'to-delete' });
    await repo.deleteManifest(pushed.digest);
    expect(await repo.fetchManifest(pushed.digest)).toBeUndefined();
  });

  it('refuses invalid tags client-side before any request', async () => {
    for (const bad of ['.hidden', '-dash', 'x'.repeat(129), 'a/b', '']) {
      await expect(repo.fetchManifest(bad)).rejects.toMatchObject({ code: 'OCI_ERR_TAG_INVALID' });
      await expect(repo.pushManifest(new Uint8Array(2), MANIFEST, { tag: bad })).rejects.toMatchObject({
        code: 'OCI_ERR_TAG_INVALID',
      });
    }
    expect(() => client.repository('Upper/Case')).toThrow(
      expect.objectContaining({ code: 'OCI_ERR_NAME_INVALID' }),
    );
  });
});

describe('token auth', () => {
  let reg: RegistryFixture;
  let shortLived: RegistryFixture;
  beforeAll(async () => {
    [reg, shortLived] = await Promise.all([
      startRegistry({ mode: 'token' }),
      startRegistry({ mode: 'token', tokenTtlSeconds: 2 }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([reg?.close(), shortLived?.close()]);
  });

  const backend = (password = reg.password, fixture = reg) =>
    createOciBackend({
      url: fixture.ociUrl('tokens/repo'),
      credentials: { username: fixture.username, password },
      authFiles: null,
      env: {},
      retries: 3,
    });

  it('fetches a token once per scope set and reuses it across many requests', async () => {
    const repo = backend();
    try {
      const bytes = seededBytes(1, 512);
      const d = { mediaType: BLOB, digest: sha256Digest(bytes), size: bytes.byteLength };
      await repo.pushBlob(d, bytes); // push-scope token
      await repo.blobExists(d); // pull-scope token
      const afterWarmUp = reg.tokenServer!.requests;
      expect(afterWarmUp).toBeGreaterThan(0);
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          expect(await repo.blobExists(d)).toBe(true);
          await collect(await repo.fetchBlob(d));
          await repo.pushBlob(d, bytes);
        }),
      );
      expect(reg.tokenServer!.requests).toBe(afterWarmUp);
    } finally {
      await repo.close();
    }
  });

  it('refreshes an expired token (tokenTtlSeconds: 2) and keeps working', async () => {
    const repo = backend(shortLived.password, shortLived);
    try {
      const bytes = seededBytes(2, 512);
      const d = { mediaType: BLOB, digest: sha256Digest(bytes), size: bytes.byteLength };
      await repo.pushBlob(d, bytes);
      expect(await repo.blobExists(d)).toBe(true);
      const before = shortLived.tokenServer!.requests;
      await new Promise((r) => setTimeout(r, 2500));
      expect(await repo.blobExists(d)).toBe(true);
      expect(await collect(await repo.fetchBlob(d))).toEqual(bytes);
      expect(shortLived.tokenServer!.requests).toBeGreaterThan(before);
    } finally {
      await repo.close();
    }
  });

  it('a wrong password fails with UNAUTHORIZED after one token request, no retry storm', async () => {
    const repo = backend('wrong:password');
    try {
      const before = reg.tokenServer!.requests;
      const error = await repo
        .blobExists({ digest: sha256Digest(new Uint8Array(1)) })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OciError);
      expect(error).toMatchObject({ code: 'OCI_ERR_UNAUTHORIZED', statusCode: 401 });
      expect(String((error as Error).message)).not.toContain('wrong:password');
      expect(reg.tokenServer!.requests - before).toBe(1);
    } finally {
      await repo.close();
    }
  });

  it('anonymous access to a token registry is UNAUTHORIZED', async () => {
    const client = createOciClient({ registry: reg.host, ca: reg.caFile!, authFiles: null, env: {} });
    try {
      await expect(client.repository('tokens/repo').fetchManifest('latest')).rejects.toMatchObject({
        code: 'OCI_ERR_UNAUTHORIZED',
      });
    } finally {
      await client.close();
    }
  });
});

describe('token auth with limited accounts', () => {
  let reg: RegistryFixture;
  const admin = { username: 'robot$task-cache+admin', password: 'adm:in pass' };
  const limited = { username: 'robot$task-cache+limited', password: 'lim:ited' };
  beforeAll(async () => {
    reg = await startRegistry({
      mode: 'token',
      users: [
        { ...admin, access: { '*': ['pull', 'push', 'delete'] } },
        { ...limited, access: { 'dest/*': ['pull', 'push'], 'readonly/*': ['pull'] } },
      ],
    });
  });
  afterAll(async () => {
    await reg?.close();
  });
  const repoFor = (credentials: { username: string; password: string }, name: string) => {
    const client = createOciClient({
      registry: reg.host,
      ca: reg.caFile!,
      credentials,
      authFiles: null,
      env: {},
    });
    return { client, repo: client.repository(name) };
  };

  it('falls back to a normal upload when the mount source is not readable (401 on mount)', async () => {
    const bytes = seededBytes(31, 3000);
    const d = { mediaType: BLOB, digest: sha256Digest(bytes), size: bytes.byteLength };
    const src = repoFor(admin, 'src/repo');
    const dest = repoFor(limited, 'dest/repo');
    try {
      await src.repo.pushBlob(d, bytes);
      await dest.repo.pushBlob(d, bytes, { mountFrom: ['src/repo'] });
      expect(await dest.repo.blobExists(d)).toBe(true);
      expect(await collect(await dest.repo.fetchBlob(d))).toEqual(bytes);
    } finally {
      await src.client.close();
      await dest.client.close();
    }
  });

  it('a push without push access is DENIED (insufficient_scope), not a login failure', async () => {
    const bytes = seededBytes(32, 100);
    const ro = repoFor(limited, 'readonly/repo');
    try {
      const error = await ro.repo
        .pushBlob({ mediaType: BLOB, digest: sha256Digest(bytes), size: bytes.byteLength }, bytes)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OciError);
      expect(error).toMatchObject({ code: 'OCI_ERR_DENIED', statusCode: 401, method: 'POST' });
      expect((error as Error).message).toMatch(/insufficient_scope/);
      expect((error as Error).message).not.toContain(limited.password);
    } finally {
      await ro.client.close();
    }
  });
});

describe('credentials from the environment and auth files', () => {
  let reg: RegistryFixture;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'htpasswd' });
  });
  afterAll(async () => {
    await reg?.close();
  });

  it('uses TASK_CACHE_OCI_USER/PASSWORD and TASK_CACHE_OCI_CA', async () => {
    const client = createOciClient({
      registry: reg.host,
      authFiles: null,
      env: {
        TASK_CACHE_OCI_USER: reg.username,
        TASK_CACHE_OCI_PASSWORD: reg.password,
        TASK_CACHE_OCI_CA: reg.caFile,
      },
    });
    try {
      expect(await client.repository('env/repo').fetchManifest('nope')).toBeUndefined();
    } finally {
      await client.close();
    }
  });

  it('uses a docker config.json auth entry (user with $, password with :)', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'oci-auth-'));
    try {
      const auth = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth } } }));
      const client = createOciClient({ registry: reg.host, ca: reg.caFile!, env: { DOCKER_CONFIG: dir } });
      try {
        const repo = client.repository('files/repo');
        const bytes = seededBytes(3, 100);
        await pushSmall(repo, bytes);
        expect(await repo.blobExists({ digest: sha256Digest(bytes) })).toBe(true);
      } finally {
        await client.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a TLS registry without its CA fails with a NETWORK error naming the TLS problem', async () => {
    const client = createOciClient({ registry: reg.host, authFiles: null, env: {}, retries: 0 });
    try {
      const error = await client
        .repository('x/y')
        .fetchManifest('latest')
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'OCI_ERR_NETWORK' });
      expect((error as Error).message).toMatch(/certificate|self.signed|issuer/i);
    } finally {
      await client.close();
    }
  });
});
