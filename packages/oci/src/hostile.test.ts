/**
 * The registry client against a hostile registry (issue 16, @task-cache/testkit
 * `startHostileRegistry`): every answer it reads is bounded in time and size, whatever the server
 * does, and nothing it throws or reports carries the credentials it sent. Short timeouts are
 * passed as options so each case takes seconds; the bounds asserted are generous.
 */
import { type HostileMode, type HostileRegistry, startHostileRegistry } from '@task-cache/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { createOciClient, type OciClientOptions } from './client.js';
import { OciError } from './errors.js';
import type { WarningEvent } from './internal/transport/index.js';

let registry: HostileRegistry | undefined;
afterEach(async () => {
  await registry?.close();
  registry = undefined;
});

async function repoOn(mode: HostileMode, options: Partial<OciClientOptions> = {}) {
  registry = await startHostileRegistry({ mode });
  const client = createOciClient({
    registry: registry.host,
    plainHttp: true,
    authFiles: null,
    env: {},
    retries: 1,
    minRetryDelayMs: 10,
    ...options,
  });
  return { client, repo: client.repository('hostile/repo') };
}

/** Runs `fn`, returns what it threw and how long it took. */
async function timed(fn: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  try {
    await fn();
    return { error: undefined, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

describe('bounded time', () => {
  it('a manifest body sent one byte per second is cut by requestTimeoutMs', async () => {
    const { client, repo } = await repoOn('slow-body', { requestTimeoutMs: 1_500 });
    const { error, ms } = await timed(() => repo.fetchManifest('latest'));
    console.log(`slow-loris manifest: failed after ${Math.round(ms)} ms`);
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).code).toBe('OCI_ERR_TIMEOUT');
    // 2 attempts of 1.5 s, plus slack for a loaded machine.
    expect(ms).toBeLessThan(10_000);
    await client.close();
  });

  it('a retryable 503 whose error body comes one byte per second is cut, not waited for', async () => {
    const { client, repo } = await repoOn('slow-error', { requestTimeoutMs: 1_500 });
    const { error, ms } = await timed(() => repo.fetchManifest('latest'));
    console.log(`slow-loris 503 body: failed after ${Math.round(ms)} ms`);
    expect(error).toBeInstanceOf(OciError);
    expect(ms).toBeLessThan(10_000);
    await client.close();
  });

  it('an endless error body sent fast is read to maxErrorBodyBytes, then cut', async () => {
    const { client, repo } = await repoOn('endless-error', { requestTimeoutMs: 20_000 });
    const { error, ms } = await timed(() => repo.fetchManifest('latest'));
    console.log(`endless 400 body: failed after ${Math.round(ms)} ms, ${registry?.bytesSent} bytes sent`);
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).statusCode).toBe(400);
    // Cut at 64 KiB, not after the request budget: well under it.
    expect(ms).toBeLessThan(10_000);
    await client.close();
  });

  it('a tag list whose Link always names a new page stops at maxTagPages', async () => {
    const { client, repo } = await repoOn('endless-pages', { maxTagPages: 50 });
    const { error } = await timed(async () => {
      for await (const _ of repo.listTags()) {
        // drain
      }
    });
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).code).toBe('OCI_ERR_REGISTRY');
    expect((error as Error).message).toMatch(/maxTagPages \(50\)/);
    expect(registry?.requests).toBeLessThanOrEqual(51);
    await client.close();
  });
});

describe('bounded size', () => {
  it('a token answer larger than maxTokenBytes is refused as it streams (UNAUTHORIZED)', async () => {
    const { client, repo } = await repoOn('huge-token', { maxTokenBytes: 64 * 1024 });
    const before = process.memoryUsage().rss;
    const { error, ms } = await timed(() => repo.fetchManifest('latest'));
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).code).toBe('OCI_ERR_UNAUTHORIZED');
    expect((error as Error).message).toMatch(/maxTokenBytes/);
    // Not buffered: far less than the 1.5 GB announced went through.
    expect(process.memoryUsage().rss - before).toBeLessThan(200e6);
    expect(ms).toBeLessThan(10_000);
    await client.close();
  });
});

describe('messages name the fix', () => {
  // Regression (issue 16): raw OpenSSL text ("ssl3_get_record:wrong version number"), no hint.
  it('HTTPS to a plain-HTTP port says to add ?plain-http=true, at once (not retried)', async () => {
    const { client, repo } = await repoOn('slow-body', { plainHttp: false, retries: 3 });
    const { error, ms } = await timed(() => repo.fetchManifest('latest'));
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).code).toBe('OCI_ERR_NETWORK');
    expect((error as Error).message).toMatch(/plain HTTP on this port: add \?plain-http=true/);
    expect(ms).toBeLessThan(5_000);
    await client.close();
  });

  // Regression (issue 16): "authentication failed (check the credentials)" with none configured.
  it('a 401 without credentials says none were found for the host, and where we looked', async () => {
    const { client, repo } = await repoOn('echo-auth', { authFiles: ['/nonexistent/auth.json'] });
    const { error } = await timed(() => repo.fetchManifest('latest'));
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).code).toBe('OCI_ERR_UNAUTHORIZED');
    expect((error as Error).message).toContain(
      `no credentials were found for ${registry?.host} (looked in TASK_CACHE_OCI_USER/TASK_CACHE_OCI_PASSWORD, /nonexistent/auth.json)`,
    );
    await client.close();
  });
});

describe('no secret in any output', () => {
  // A password with every character that URL parsing, percent-encoding and base64 treat specially.
  const username = 'robot$ci+1';
  const password = 'S3CRET/x#y?z@w%25 +=';
  const forms = (s: string) => [
    s,
    encodeURIComponent(s),
    encodeURI(s),
    Buffer.from(s).toString('base64'),
    Buffer.from(s).toString('base64').replace(/=+$/, ''),
    Buffer.from(s).toString('base64url'),
  ];
  const secretForms = [...forms(password), ...forms(`${username}:${password}`)];

  it('a registry that echoes Authorization: no error, message, cause or warning holds the credential', async () => {
    const warnings: WarningEvent[] = [];
    const { client, repo } = await repoOn('echo-auth', {
      credentials: { username, password },
      onWarning: (w) => warnings.push(w),
    });
    const { error } = await timed(() => repo.fetchManifest('latest'));
    expect(error).toBeInstanceOf(OciError);
    // The registry did get (and echo) the credentials: the test can fail.
    expect(registry?.authorizations.some((a) => a.startsWith('Basic '))).toBe(true);
    const outputs = [
      String(error),
      (error as Error).stack ?? '',
      JSON.stringify(error),
      JSON.stringify((error as OciError).warnings ?? []),
      String((error as Error).cause ?? ''),
      JSON.stringify(warnings),
    ];
    expect(warnings.length).toBeGreaterThan(0);
    for (const text of outputs) {
      for (const form of secretForms) expect(text).not.toContain(form);
    }
    await client.close();
  });
});
