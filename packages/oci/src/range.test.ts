// FetchBlobOptions.range: a byte range of a blob, read from the REAL CNCF registry (directly, through
// the quirk proxy that makes it ignore Range, and through the fault proxy) and from an image layout.
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type FaultAction,
  type FaultProxy,
  type RegistryFixture,
  type SeenRequest,
  seededBytes,
  startProxy,
  startQuirkProxy,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOciClient, type OciClientOptions, type OciRepository } from './client.js';
import { descriptorOf, sha256Digest } from './digest.js';
import { InvalidOptionError, RegistryError, SizeMismatchError } from './errors.js';
import { createLayoutStore } from './layout/store.js';
import type { BlobRange, Descriptor, OciStore } from './types.js';

const BLOB = 'application/octet-stream';
const SIZE = 3 * 1024 * 1024 + 17;
const bytes = seededBytes(41, SIZE);
const d = descriptorOf(bytes, BLOB);
const REPO = 'range/repo';

/** First byte, one in the middle, the last byte, a run across pieces, the whole blob as a range. */
const RANGES: BlobRange[] = [
  { offset: 0, length: 1 },
  { offset: 1_500_000, length: 1 },
  { offset: SIZE - 1, length: 1 },
  { offset: 70_000, length: 2 * 1024 * 1024 },
  { offset: 0, length: SIZE },
];

const slice = (r: BlobRange) => bytes.subarray(r.offset, r.offset + r.length);

/** Size and digest: vitest's element-wise toEqual on megabytes takes seconds. */
const sum = (b: Uint8Array) => ({ size: b.byteLength, digest: sha256Digest(b) });

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p);
  return new Uint8Array(Buffer.concat(parts));
}

const read = async (store: Pick<OciStore, 'fetchBlob'>, range: BlobRange, desc: Descriptor = d) =>
  collect(await store.fetchBlob(desc, { range }));

const blobGets = (proxy: FaultProxy) =>
  proxy.requests.filter((r) => r.method === 'GET' && r.url.includes('/blobs/sha256:'));

/** Drops the request's Range header, as a registry that ignores it (the fault proxy forwards the rest). */
function dropRange(req: SeenRequest): void {
  const { range: _range, ...rest } = req.headers;
  req.headers = rest;
}

let reg: RegistryFixture;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  reg = await startRegistry({ mode: 'anonymous' });
  const client = createOciClient({ registry: reg.host, plainHttp: true, authFiles: null, env: {} });
  try {
    await client.repository(REPO).pushBlob(d, bytes);
  } finally {
    await client.close();
  }
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});
afterAll(async () => {
  await reg?.close();
});

function client(host: string, options: Partial<OciClientOptions> = {}): OciRepository {
  const c = createOciClient({
    registry: host,
    plainHttp: true,
    authFiles: null,
    env: {},
    minRetryDelayMs: 10,
    maxRetryDelayMs: 50,
    ...options,
  });
  closers.push(() => c.close());
  return c.repository(REPO);
}

async function viaProxy(
  handle: (req: SeenRequest, n: number) => FaultAction | Promise<FaultAction> = () => ({ kind: 'pass' }),
  options: Partial<OciClientOptions> = {},
): Promise<{ repo: OciRepository; proxy: FaultProxy }> {
  const proxy = await startProxy({ upstream: reg.baseUrl, handle });
  closers.push(() => proxy.close());
  return { repo: client(proxy.host, options), proxy };
}

describe('registry: ranged reads', () => {
  it('returns exactly the asked bytes (206): first, middle, last byte, a run, the whole blob as a range', async () => {
    const { repo, proxy } = await viaProxy();
    for (const r of RANGES) expect(sum(await read(repo, r))).toEqual(sum(slice(r)));
    expect(blobGets(proxy).map((g) => g.headers.range)).toEqual(
      RANGES.map((r) => `bytes=${r.offset}-${r.offset + r.length - 1}`),
    );
    expect(repo.observedCapabilities?.()).toMatchObject({ rangeRequests: true });
    // The whole blob without a range is still one plain GET, digest-checked.
    expect(sum(await collect(await repo.fetchBlob(d)))).toEqual(sum(bytes));
    expect(blobGets(proxy).at(-1)?.headers.range).toBeUndefined();
  });

  it('a registry that ignores Range (200, quirk proxy ignoreRange) still yields exactly the range', async () => {
    const proxy = await startQuirkProxy({ upstream: reg.baseUrl, profile: 'harbor', ignoreRange: true });
    closers.push(() => proxy.close());
    const repo = client(proxy.host);
    for (const r of RANGES) expect(sum(await read(repo, r))).toEqual(sum(slice(r)));
    expect(proxy.refusals.map((r) => r.rule)).toEqual(RANGES.map(() => 'range-ignored'));
    expect(repo.observedCapabilities?.()).toMatchObject({ rangeRequests: false });
  });

  it('a 200 answer is closed after the range: the rest of the body is never waited for', async () => {
    // The registry ignores Range and its body stalls after 1 MiB; a reader that read on would
    // hit the idle timeout and, with no retries, fail.
    const { repo, proxy } = await viaProxy(
      (req) => {
        dropRange(req);
        return req.method === 'GET' ? { kind: 'stall-body', afterBytes: 1024 * 1024 } : { kind: 'pass' };
      },
      { retries: 0, bodyTimeoutMs: 2_000 },
    );
    const r = { offset: 200_000, length: 300_000 };
    expect(sum(await read(repo, r))).toEqual(sum(slice(r)));
    expect(blobGets(proxy)).toHaveLength(1);
  });

  it('invalid ranges throw InvalidOptionError naming range, before any request', async () => {
    const { repo, proxy } = await viaProxy();
    const invalid: unknown[] = [
      null,
      'bytes=0-1',
      { offset: -1, length: 1 },
      { offset: 1.5, length: 1 },
      { offset: Number.NaN, length: 1 },
      { offset: '0', length: 1 },
      { offset: 0, length: 0 },
      { offset: 0, length: -5 },
      { offset: 0 },
      { offset: Number.MAX_SAFE_INTEGER + 1, length: 1 },
      { offset: SIZE, length: 1 },
      { offset: SIZE - 10, length: 11 },
      { offset: 0, length: SIZE + 1 },
    ];
    for (const range of invalid) {
      const error = await repo.fetchBlob(d, { range: range as BlobRange }).catch((e: unknown) => e);
      expect(error, JSON.stringify(range)).toBeInstanceOf(InvalidOptionError);
      expect(error).toMatchObject({ code: 'OCI_ERR_INVALID_OPTION', digest: d.digest });
      expect((error as Error).message).toMatch(/\brange\b/);
    }
    expect(proxy.requests).toHaveLength(0);
  });

  it('a 206 whose Content-Range is not the asked bytes is refused (RegistryError)', async () => {
    const r = { offset: 4, length: 4 };
    const wrong: Array<Record<string, string>> = [
      { 'content-range': `bytes 0-3/${SIZE}` },
      { 'content-range': `bytes 4-8/${SIZE}` },
      { 'content-range': `bytes 4-7/${SIZE + 1}` },
      { 'content-range': 'bytes */99' },
      {},
    ];
    for (const headers of wrong) {
      const { repo } = await viaProxy(() => ({ kind: 'respond', status: 206, headers, body: 'abcd' }));
      const error = await read(repo, r).catch((e: unknown) => e);
      expect(error, JSON.stringify(headers)).toBeInstanceOf(RegistryError);
      expect(error).toMatchObject({ code: 'OCI_ERR_REGISTRY', statusCode: 206, digest: d.digest });
      expect((error as Error).message).toContain('Content-Range');
    }
    // The same answer with the asked Content-Range is taken (`*` for an unknown total too).
    for (const total of [String(SIZE), '*']) {
      const { repo } = await viaProxy(() => ({
        kind: 'respond',
        status: 206,
        headers: { 'content-range': `bytes 4-7/${total}` },
        body: 'abcd',
      }));
      expect(Buffer.from(await read(repo, r)).toString()).toBe('abcd');
    }
  });

  it('a 206 with fewer or more bytes than the range is a SizeMismatchError', async () => {
    const r = { offset: 4, length: 4 };
    for (const body of ['abc', 'abcde']) {
      const { repo } = await viaProxy(() => ({
        kind: 'respond',
        status: 206,
        headers: { 'content-range': `bytes 4-7/${SIZE}` },
        body,
      }));
      await expect(read(repo, r)).rejects.toBeInstanceOf(SizeMismatchError);
    }
  });

  it('a ranged read cut off mid-way resumes from where it got to, within the range', async () => {
    const { repo, proxy } = await viaProxy((req, n) =>
      req.method === 'GET' && n === 1 ? { kind: 'reset-mid-body', afterBytes: 512 * 1024 } : { kind: 'pass' },
    );
    const r = { offset: 100_000, length: 2 * 1024 * 1024 };
    expect(sum(await read(repo, r))).toEqual(sum(slice(r)));
    const ranges = blobGets(proxy).map((g) => String(g.headers.range));
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBe(`bytes=100000-${100_000 + r.length - 1}`);
    const [, from, to] = /^bytes=(\d+)-(\d+)$/.exec(ranges[1]!) ?? [];
    expect(Number(from)).toBeGreaterThan(100_000);
    expect(Number(from)).toBeLessThanOrEqual(100_000 + 512 * 1024);
    expect(Number(to)).toBe(100_000 + r.length - 1);
  });

  it('a ranged read cut off mid-way through a registry that ignores Range resumes and skips again', async () => {
    const { repo, proxy } = await viaProxy((req, n) => {
      dropRange(req);
      return req.method === 'GET' && n === 1
        ? { kind: 'reset-mid-body', afterBytes: 512 * 1024 }
        : { kind: 'pass' };
    });
    const r = { offset: 256 * 1024, length: 1024 * 1024 };
    expect(sum(await read(repo, r))).toEqual(sum(slice(r)));
    expect(blobGets(proxy)).toHaveLength(2);
  });

  it('a redirect to storage (307 to another origin) keeps the Range header', async () => {
    const storage = await startProxy({ upstream: reg.baseUrl });
    closers.push(() => storage.close());
    const { repo } = await viaProxy((req) =>
      req.method === 'GET' && /\/blobs\/sha256:/.test(req.url)
        ? {
            kind: 'respond',
            status: 307,
            headers: { location: `${storage.url}${req.url}?X-Amz-Signature=sig` },
          }
        : { kind: 'pass' },
    );
    const r = { offset: 1234, length: 5678 };
    expect(sum(await read(repo, r))).toEqual(sum(slice(r)));
    expect(blobGets(storage).map((g) => g.headers.range)).toEqual(['bytes=1234-6911']);
  });
});

describe('image layout: ranged reads', () => {
  let dir: string;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function layout() {
    dir = await mkdtemp(join(tmpdir(), 'tc-range-'));
    const store = createLayoutStore(join(dir, 'layout'), { fsync: false });
    closers.push(() => store.close());
    await store.pushBlob(d, bytes);
    return store;
  }
  const blobFile = (digest: string) => join(dir, 'layout', 'blobs', 'sha256', digest.slice('sha256:'.length));

  it('returns the same slices as the registry', async () => {
    const store = await layout();
    for (const r of RANGES) expect(sum(await read(store, r))).toEqual(sum(slice(r)));
  });

  it('invalid ranges throw InvalidOptionError naming range; a missing blob is BlobUnknownError', async () => {
    const store = await layout();
    for (const range of [
      { offset: -1, length: 1 },
      { offset: 0, length: 0 },
      { offset: SIZE, length: 1 },
    ]) {
      const error = await store.fetchBlob(d, { range }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as Error).message).toMatch(/\brange\b/);
    }
    const other = descriptorOf(seededBytes(42, 100), BLOB);
    await expect(store.fetchBlob(other, { range: { offset: 0, length: 10 } })).rejects.toMatchObject({
      code: 'OCI_ERR_BLOB_UNKNOWN',
    });
  });

  it('a file shorter than the range is a SizeMismatchError; a range is checked for length, not hashed', async () => {
    const store = await layout();
    await truncate(blobFile(d.digest), SIZE - 10);
    await expect(read(store, { offset: SIZE - 20, length: 20 })).rejects.toBeInstanceOf(SizeMismatchError);
    expect(await read(store, { offset: 0, length: 5 })).toEqual(bytes.subarray(0, 5));
    // Same size, other bytes: the whole blob as a range is handed on (the caller proves it);
    // without a range the digest refuses it.
    const other = seededBytes(43, SIZE);
    await writeFile(blobFile(d.digest), other);
    expect(sum(await read(store, { offset: 0, length: SIZE }))).toEqual(sum(other));
    await expect(collect(await store.fetchBlob(d))).rejects.toMatchObject({
      code: 'OCI_ERR_DIGEST_MISMATCH',
    });
  });
});
