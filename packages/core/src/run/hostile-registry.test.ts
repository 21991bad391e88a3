/**
 * `cache.run()` against hostile registries (issue 16, @task-cache/testkit `startHostileRegistry`
 * and `startBlackHole`): the build's result comes back within the time bound, an oversized
 * entry is a miss with a typed reason at flat memory (measured in a child process), and no event
 * or error carries the credentials sent.
 *
 * The time cases run with the DEFAULT timeouts (the acceptance is about the defaults); the
 * bound asserted is generous (30 s) and the measured time is printed.
 *
 * NOTE: the memory child runs plain JavaScript bundled from the current sources by esbuild, as
 * in ../entry/bounded-memory.test.ts: a TypeScript loader in the child would add memory the
 * package does not have.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BlackHoleFixture,
  type HostileMode,
  type HostileRegistry,
  startBlackHole,
  startHostileRegistry,
} from '@task-cache/testkit';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../../test/helpers.js';
import type { CacheEvent } from '../events/types.js';
import { createCache } from '../index.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
/** Issue 16's targets. */
const TIME_LIMIT_MS = 30_000;
const RSS_LIMIT = 300 * 1e6;

let root: string;
beforeAll(async () => {
  root = await tempDir('tc-hostile-');
});
afterAll(async () => {
  if (root) await removeDir(root);
});

/** A task directory with one source file. */
async function project(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src', 'main.ts'), `export const name = ${JSON.stringify(name)};\n`);
  return dir;
}

/** One run with the default timeouts; returns the result, the events and the time taken. */
async function runAgainst(host: string, name: string, env: Record<string, string> = {}) {
  const dir = await project(name);
  const events: CacheEvent[] = [];
  const cache = createCache({
    store: `oci://${host}/hostile/${name}?plain-http=true`,
    lock: false,
    stateDir: join(root, `${name}-state`),
    env,
    onEvent: (e) => events.push(e),
  });
  const run = async () => {
    const started = performance.now();
    const result = await cache.run(
      { task: name, dir, sources: ['src/**'], generates: ['dist/**'] },
      async () => {
        await mkdir(join(dir, 'dist'), { recursive: true });
        await writeFile(join(dir, 'dist', 'out.js'), 'built\n');
        return 42;
      },
    );
    return { result, ms: performance.now() - started };
  };
  return { cache, events, run };
}

describe('a dead or slow registry costs ≤ 30 s per run, and the next run skips it at once', () => {
  let hole: BlackHoleFixture | undefined;
  let slow: HostileRegistry | undefined;
  afterAll(async () => {
    await Promise.all([hole?.close(), slow?.close()]);
  });

  it.each([
    [
      'a black hole (accepts TCP, never answers)',
      async () => {
        hole = await startBlackHole();
        return `${hole.host}:${hole.port}`;
      },
    ],
    [
      'a registry that sends every body one byte per second',
      async () => {
        slow = await startHostileRegistry({ mode: 'slow-body' });
        return slow.host;
      },
    ],
  ])('%s', { timeout: 90_000 }, async (label, start) => {
    const host = await start();
    const { cache, events, run } = await runAgainst(host, label.startsWith('a black') ? 'hole' : 'slow');
    const first = await run();
    const second = await run();
    await cache.close();
    console.log(
      `${label}: run 1 took ${Math.round(first.ms)} ms (${first.result.status}), run 2 ${Math.round(second.ms)} ms (${second.result.status})`,
    );
    expect(first.result).toMatchObject({ status: 'built', value: 42 });
    expect(first.ms).toBeLessThan(TIME_LIMIT_MS);
    expect(second.result).toMatchObject({ status: 'built', value: 42 });
    expect(second.ms).toBeLessThan(5_000);
    const warnings = events.filter((e) => e.type === 'warning');
    // One warning per cause per run: the lookup's, then the open breaker's.
    expect(warnings.map((w) => w.code)).toEqual(['LOOKUP_FAILED', 'CIRCUIT_OPEN']);
  });
});

describe('an oversized entry is a miss with a typed reason in < 5 s at flat memory (child process)', () => {
  let child = '';
  let bundle: string | undefined;
  beforeAll(async () => {
    const cacheDir = join(here('../../node_modules'), '.cache');
    await mkdir(cacheDir, { recursive: true });
    bundle = await mkdtemp(join(cacheDir, 'tc-hostile-'));
    await build({
      entryPoints: { 'hostile-child': here('../../test/fixtures/hostile-child.ts') },
      outdir: bundle,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      tsconfig: here('../../../../tsconfig.json'),
      external: ['tar-stream', 'zstd-codec', 'ioredis'],
      banner: {
        js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      },
      logLevel: 'error',
    });
    child = join(bundle, 'hostile-child.js');
  }, 120_000);
  afterAll(async () => {
    if (bundle) await rm(bundle, { recursive: true, force: true });
  });

  interface ChildReport {
    status: string;
    value: unknown;
    warnings: { code: string; causeCode?: string; message: string }[];
    ms: number;
    maxRssBytes: number;
  }

  async function runChild(host: string, name: string): Promise<ChildReport> {
    const dir = await project(name);
    const out = await new Promise<string>((resolve, reject) => {
      const proc = spawn(process.execPath, [child], {
        env: {
          ...process.env,
          TC_HOSTILE: JSON.stringify({ host, dir, stateDir: join(root, `${name}-state`) }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      proc.stdout.on('data', (d) => {
        text += d;
      });
      proc.on('error', reject);
      proc.on('close', (code) =>
        code === 0 ? resolve(text) : reject(new Error(`child exited with ${code}: ${text}`)),
      );
    });
    return JSON.parse(out.trim().split('\n').at(-1) as string) as ChildReport;
  }

  it.each([
    ['huge-index', 'an index of 1,500 children of 4 MiB', 'CACHE_ERR_ENTRY_TOO_LARGE'],
    ['huge-config', 'a config of 50 MB', 'CACHE_ERR_ENTRY_TOO_LARGE'],
    ['huge-token', 'a token answer of 1.5 GB', 'OCI_ERR_UNAUTHORIZED'],
  ] as const)('%s: %s', { timeout: 60_000 }, async (mode: HostileMode, label, causeCode) => {
    const registry = await startHostileRegistry({ mode });
    try {
      const report = await runChild(registry.host, mode);
      console.log(
        `${label}: ${report.status} in ${Math.round(report.ms)} ms, peak RSS ${(report.maxRssBytes / 1e6).toFixed(0)} MB, ${registry.bytesSent} bytes sent; warnings ${JSON.stringify(report.warnings.map((w) => w.causeCode))}`,
      );
      expect(report).toMatchObject({ status: 'built', value: 'built-value' });
      expect(report.warnings.map((w) => w.causeCode)).toEqual([causeCode]);
      expect(report.ms).toBeLessThan(5_000);
      expect(report.maxRssBytes).toBeLessThan(RSS_LIMIT);
    } finally {
      await registry.close();
    }
  });
});

describe('no secret in any output', () => {
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

  it('a registry that echoes Authorization: no event or error holds the credential (strict and not)', async () => {
    const registry = await startHostileRegistry({ mode: 'echo-auth' });
    try {
      const env = { TASK_CACHE_OCI_USER: username, TASK_CACHE_OCI_PASSWORD: password };
      const { cache, events, run } = await runAgainst(registry.host, 'echo', env);
      const { result } = await run();
      await cache.close();
      expect(result.status).toBe('built');
      const strict = createCache({
        store: `oci://${registry.host}/hostile/echo-strict?plain-http=true`,
        lock: false,
        stateDir: join(root, 'echo-strict-state'),
        env,
        strict: true,
        onEvent: (e) => events.push(e),
      });
      const dir = await project('echo-strict');
      const error = await strict
        .run({ task: 'echo-strict', dir, sources: ['src/**'], generates: ['dist/**'] }, async () => 1)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      await strict.close();
      expect(error).toBeInstanceOf(Error);
      // The registry did get (and echo) the credentials: the test can fail.
      expect(registry.authorizations.some((a) => a.startsWith('Basic '))).toBe(true);
      expect(events.some((e) => e.type === 'warning')).toBe(true);
      const texts = [JSON.stringify(events), String(error), (error as Error).stack ?? ''];
      for (let c = (error as Error).cause; c !== undefined; c = (c as Error).cause) {
        texts.push(String(c), JSON.stringify(c), (c as Error).stack ?? '');
      }
      for (const text of texts) {
        for (const form of [...forms(password), ...forms(`${username}:${password}`)])
          expect(text).not.toContain(form);
      }
    } finally {
      await registry.close();
    }
  });
});
