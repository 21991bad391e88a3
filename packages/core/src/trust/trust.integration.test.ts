import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createOciBackend } from '@task-cache/oci';
import { type RegistryFixture, startRegistry } from '@task-cache/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatEvent } from '../events/format.js';
import type { CacheEvent } from '../events/types.js';
import { type Cache, createCache } from '../run/cache.js';
import type { CacheOptions, RunOptions } from '../run/types.js';

// Issue 19 against the REAL registry (docker-registry, anonymous mode on plain HTTP, so an
// attacker's `curl` needs no credentials) and the embedded default store: explained misses, key
// collisions, time saved, signed entries (poisoning, re-tagging, rotation) and `readOnly: 'auto'`.

const run$ = promisify(execFile);
let reg: RegistryFixture;
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'tc-trust-home-'));
  reg = await startRegistry({ mode: 'anonymous' });
});
afterAll(async () => {
  await reg?.close();
  await rm(home, { recursive: true, force: true });
});

const temps: string[] = [];
const caches: Cache[] = [];
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()));
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function temp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

async function project(files: Record<string, string> = { 'src/app.ts': 'export {};\n' }): Promise<string> {
  const dir = await temp('tc-trust-');
  for (const [p, c] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), c);
  }
  return dir;
}

/** A cache over `repo` of the registry, its state in a temp dir, events collected. */
async function cacheOf(repo: string, options: CacheOptions = {}): Promise<Cache & { events: CacheEvent[] }> {
  const events: CacheEvent[] = [];
  const cache = createCache({
    store: reg.ociUrl(repo),
    lock: false,
    stateDir: await temp('tc-trust-state-'),
    env: { HOME: home },
    onEvent: (e) => events.push(e),
    ...options,
  });
  caches.push(cache);
  return Object.assign(cache, { events });
}

/** Writes dist/out.txt from src/app.ts (prefixed with `tag`), counting calls. */
function builder(dir: string, tag = 'built', delayMs = 0) {
  const b = Object.assign(
    async () => {
      b.calls += 1;
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      await mkdir(join(dir, 'dist'), { recursive: true });
      await writeFile(join(dir, 'dist/out.txt'), `${tag}:${await readFile(join(dir, 'src/app.ts'), 'utf8')}`);
    },
    { calls: 0 },
  );
  return b;
}
const spec = (dir: string, extra: Partial<RunOptions> = {}): RunOptions => ({
  task: 'build',
  dir,
  sources: ['src/**'],
  generates: ['dist/**'],
  ...extra,
});
const out = (dir: string) => readFile(join(dir, 'dist/out.txt'), 'utf8');

async function tags(repo: string): Promise<string[]> {
  const store = createOciBackend({ url: `oci://${reg.host}/${repo}`, plainHttp: true });
  try {
    const all: string[] = [];
    for await (const t of store.listTags()) all.push(t);
    return all.sort();
  } catch (error) {
    if ((error as { code?: string }).code === 'OCI_ERR_NAME_UNKNOWN') return [];
    throw error;
  } finally {
    await store.close();
  }
}

/** `curl` against the registry, as a writer holding no key would push. */
async function curl(...args: string[]): Promise<string> {
  const { stdout } = await run$('curl', ['-sS', '--fail-with-body', ...args]);
  return stdout;
}
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const manifestUrl = (repo: string, ref: string) => `${reg.baseUrl}/v2/${repo}/manifests/${ref}`;
async function getManifest(repo: string, ref: string): Promise<Record<string, unknown>> {
  return JSON.parse(await curl('-H', `Accept: ${MANIFEST}`, manifestUrl(repo, ref)));
}
async function putManifest(repo: string, ref: string, doc: unknown): Promise<void> {
  const file = join(await temp('tc-trust-curl-'), 'manifest.json');
  await writeFile(file, JSON.stringify(doc));
  await curl(
    '-X',
    'PUT',
    '-H',
    `Content-Type: ${MANIFEST}`,
    '--data-binary',
    `@${file}`,
    manifestUrl(repo, ref),
  );
}

const pem = (k: KeyObject) =>
  k.export({ type: k.type === 'private' ? 'pkcs8' : 'spki', format: 'pem' }) as string;
function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { priv: pem(privateKey), pub: pem(publicKey) };
}

describe('explained misses (policy.explain)', () => {
  it('a source file, an env value and a tool version, changed one at a time, are each named exactly', async () => {
    const dir = await project({ 'src/app.ts': 'v1\n', 'src/lib.ts': 'lib\n' });
    const cache = await cacheOf('trust/explain', { explain: true });
    const o = (env: string, node: string) =>
      spec(dir, { env: ['NODE_ENV'], envValues: { NODE_ENV: env }, tools: { node } });
    const first = await cache.run(o('production-secret-value', '20.1.0'), builder(dir));
    expect(first.status).toBe('saved');
    expect(first.explanation?.previous).toEqual({ status: 'none' });

    await writeFile(join(dir, 'src/app.ts'), 'v2\n');
    const r1 = await cache.run(o('production-secret-value', '20.1.0'), builder(dir));
    expect(r1).toMatchObject({ status: 'saved', missReason: 'not-found' });
    expect(r1.explanation?.changes).toEqual([{ input: 'source', change: 'changed', path: 'src/app.ts' }]);
    const miss = cache.events.filter((e) => e.type === 'miss').at(-1);
    expect(miss && formatEvent(miss)).toBe('task: "build" cache miss: src/app.ts changed');

    const r2 = await cache.run(o('development', '20.1.0'), builder(dir));
    expect(r2.explanation?.changes).toEqual([{ input: 'env', change: 'changed', name: 'NODE_ENV' }]);

    const r3 = await cache.run(o('development', '22.0.0'), builder(dir));
    expect(r3.explanation?.changes).toEqual([
      { input: 'tool', change: 'changed', name: 'node', from: '20.1.0', to: '22.0.0' },
    ]);
    expect((await cache.explain(o('development', '22.0.0'))).changes).toEqual([]);

    // The config records the inputs: env names and value digests, never the value.
    {
      const m = await getManifest('trust/explain', first.key);
      const config = (m.config as { digest: string }).digest;
      const text = await curl(`${reg.baseUrl}/v2/trust/explain/blobs/${config}`);
      const doc = JSON.parse(text);
      expect(doc.inputs).toMatchObject({
        task: 'build',
        sources: [
          { path: 'src/app.ts', kind: '-' },
          { path: 'src/lib.ts', kind: '-' },
        ],
        env: [{ name: 'NODE_ENV', digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) }],
        tools: [{ name: 'node', version: '20.1.0' }],
        commands: [],
        platform: null,
        extra: [],
      });
      expect(text).not.toContain('production-secret-value');
    }
  });
});

describe('key collisions', () => {
  it('ci/build and ci:build share a key: the second is a miss `key-collision` naming both, and saves nothing', async () => {
    const dir = await project();
    const cache = await cacheOf('trust/collision');
    const a = await cache.run(spec(dir, { task: 'ci/build' }), builder(dir, 'slash'));
    expect(a.status).toBe('saved');
    const b = await cache.run(spec(dir, { task: 'ci:build' }), builder(dir, 'colon'));
    expect(b).toMatchObject({ status: 'built', reason: 'key-collision', missReason: 'key-collision' });
    expect(b.key).toBe(a.key);
    const warning = cache.events.find((e) => e.type === 'warning' && e.code === 'KEY_COLLISION');
    expect(warning && formatEvent(warning)).toMatch(/task "ci\/build", not of task "ci:build"/);
    expect(await out(dir)).toBe('colon:export {};\n');
    // The first task's entry is intact.
    const again = await cache.run(spec(dir, { task: 'ci/build' }), builder(dir, 'slash'));
    expect(again.status).toBe('restored');
    expect(await out(dir)).toBe('slash:export {};\n');
  });
});

describe('time saved', () => {
  it('the config records the build duration and a hit reports it minus the restore time', async () => {
    const dir = await project();
    const cache = await cacheOf('trust/time');
    const saved = await cache.run(spec(dir), builder(dir, 'built', 300));
    expect(saved.status).toBe('saved');
    const m = await getManifest('trust/time', saved.key);
    const config = JSON.parse(
      await curl(`${reg.baseUrl}/v2/trust/time/blobs/${(m.config as { digest: string }).digest}`),
    );
    expect(config.buildDurationMs).toBeGreaterThanOrEqual(300);
    // Outputs gone: a real restore (not the up-to-date stamp's hit).
    await rm(join(dir, 'dist'), { recursive: true, force: true });
    const hit = await cache.run(spec(dir), builder(dir));
    expect(hit.status).toBe('restored');
    expect(hit.timeSavedMs).toBe(Math.max(0, config.buildDurationMs - hit.stats.restoreMs));
    const restored = cache.events.find((e) => e.type === 'restored');
    expect(restored).toMatchObject({ timeSavedMs: hit.timeSavedMs });
  });
});

describe('signed entries', () => {
  it('a reader trusting keys restores a signed entry, refuses one written without the key, a re-tagged and a forged one', async () => {
    const repo = 'trust/signed';
    const k = keyPair();
    const dir = await project({ 'src/app.ts': 'good\n' });
    const writer = await cacheOf(repo, { signingKey: k.priv });
    const signed = await writer.run(spec(dir), builder(dir, 'trusted'));
    expect(signed.status).toBe('saved');

    const readerDir = await project({ 'src/app.ts': 'good\n' });
    const reader = await cacheOf(repo, { trustedKeys: [k.pub] });
    const hit = await reader.run(spec(readerDir), builder(readerDir, 'reader'));
    expect(hit.status).toBe('restored');
    expect(await out(readerDir)).toBe('trusted:good\n');

    // A writer without the key (e.g. a pull-request job with push rights) saves under the key
    // the trusting reader will look up.
    const evilDir = await project({ 'src/app.ts': 'next\n' });
    const attacker = await cacheOf(repo);
    const poisoned = await attacker.run(spec(evilDir), builder(evilDir, 'POISON'));
    expect(poisoned.status).toBe('saved');
    const victimDir = await project({ 'src/app.ts': 'next\n' });
    const victim = await cacheOf(repo, { trustedKeys: [k.pub] });
    const refused = await victim.run(spec(victimDir), builder(victimDir, 'victim'));
    // Refused, built, and — holding no signing key — the poisoned tag is not overwritten either.
    expect(refused).toMatchObject({ status: 'built', reason: 'exists', missReason: 'untrusted' });
    expect(await out(victimDir)).toBe('victim:next\n');
    const warning = victim.events.find((e) => e.type === 'warning');
    expect(warning).toMatchObject({ code: 'UNTRUSTED_ENTRY' });
    expect(formatEvent(warning!)).toMatch(/not signed/);

    // curl: the validly signed manifest re-tagged under another key.
    const otherDir = await project({ 'src/app.ts': 'other\n' });
    const otherKey = await victim.key(spec(otherDir));
    await putManifest(repo, otherKey, await getManifest(repo, signed.key));
    const retagged = await victim.run(spec(otherDir), builder(otherDir, 'victim'));
    expect(retagged.missReason).toBe('untrusted');
    expect(await out(otherDir)).toBe('victim:other\n');
    expect(victim.events.filter((e) => e.type === 'warning').at(-1)).toMatchObject({
      code: 'UNTRUSTED_ENTRY',
      message: expect.stringMatching(/copied or re-tagged/),
    });

    // curl: an unsigned poisoned entry with a copied signature annotation.
    const forgeDir = await project({ 'src/app.ts': 'forge\n' });
    const forger = await cacheOf(repo);
    const forged = await forger.run(spec(forgeDir), builder(forgeDir, 'POISON'));
    const doc = await getManifest(repo, forged.key);
    const good = await getManifest(repo, signed.key);
    doc.annotations = good.annotations;
    await putManifest(repo, forged.key, doc);
    const forgeVictimDir = await project({ 'src/app.ts': 'forge\n' });
    const r = await victim.run(spec(forgeVictimDir), builder(forgeVictimDir, 'victim'));
    expect(r.missReason).toBe('untrusted');
    expect(await out(forgeVictimDir)).toBe('victim:forge\n');
  });

  it('key rotation: a reader trusting the old and the new key restores both; trusting only the new, not the old', async () => {
    const repo = 'trust/rotation';
    const oldKey = keyPair();
    const newKey = keyPair();
    const a = await project({ 'src/app.ts': 'a\n' });
    const b = await project({ 'src/app.ts': 'b\n' });
    await (await cacheOf(repo, { signingKey: oldKey.priv })).run(spec(a), builder(a, 'old'));
    await (await cacheOf(repo, { signingKey: newKey.priv })).run(spec(b), builder(b, 'new'));

    const both = await cacheOf(repo, { trustedKeys: oldKey.pub + newKey.pub });
    for (const [src, tag] of [
      ['a', 'old'],
      ['b', 'new'],
    ] as const) {
      const d = await project({ 'src/app.ts': `${src}\n` });
      expect((await both.run(spec(d), builder(d, 'reader'))).status).toBe('restored');
      expect(await out(d)).toBe(`${tag}:${src}\n`);
    }
    const onlyNew = await cacheOf(repo, { trustedKeys: [newKey.pub] });
    const d = await project({ 'src/app.ts': 'a\n' });
    expect((await onlyNew.run(spec(d), builder(d, 'reader'))).missReason).toBe('untrusted');
  });

  it('the embedded default store: keys from TASK_CACHE_SIGNING_KEY (a path) and TASK_CACHE_TRUSTED_KEYS', async () => {
    const k = keyPair();
    const keyDir = await temp('tc-trust-keys-');
    await writeFile(join(keyDir, 'signing.pem'), k.priv, { mode: 0o600 });
    const cacheDir = await temp('tc-trust-embedded-');
    const local = async (env: Record<string, string>) => {
      const cache = createCache({ lock: false, env: { HOME: home, TASK_CACHE_DIR: cacheDir, ...env } });
      caches.push(cache);
      return cache;
    };
    const dir = await project({ 'src/app.ts': 'x\n' });
    expect((await (await local({})).run(spec(dir), builder(dir, 'POISON'))).status).toBe('saved');
    const reader = await local({ TASK_CACHE_TRUSTED_KEYS: k.pub });
    const d1 = await project({ 'src/app.ts': 'x\n' });
    const refused = await reader.run(spec(d1), builder(d1, 'reader'));
    expect(refused.missReason).toBe('untrusted');
    expect(await out(d1)).toBe('reader:x\n');

    const y = await project({ 'src/app.ts': 'y\n' });
    await (await local({ TASK_CACHE_SIGNING_KEY: join(keyDir, 'signing.pem') })).run(
      spec(y),
      builder(y, 'signed'),
    );
    const d2 = await project({ 'src/app.ts': 'y\n' });
    expect((await reader.run(spec(d2), builder(d2, 'reader'))).status).toBe('restored');
    expect(await out(d2)).toBe('signed:y\n');
  });
});

describe('no overwrite', () => {
  it('a second writer of the same key does not replace the entry; force does; a signer replaces an untrusted one', async () => {
    const repo = 'trust/overwrite';
    const dir = await project({ 'src/app.ts': 'same\n' });
    const first = await cacheOf(repo);
    const saved = await first.run(spec(dir), builder(dir, 'first'));
    expect(saved.status).toBe('saved');
    const digest = async () =>
      (await curl('-sI', '-H', `Accept: ${MANIFEST}`, manifestUrl(repo, saved.key))).match(
        /docker-content-digest: (\S+)/i,
      )?.[1];
    const before = await digest();

    await builder(dir, 'second')();
    const second = await cacheOf(repo);
    expect(await second.save(spec(dir))).toBeUndefined();
    expect(await digest()).toBe(before);

    const forced = await cacheOf(repo, { force: true });
    expect(await forced.save(spec(dir))).toBeDefined();
    expect(await digest()).not.toBe(before);

    // An unsigned entry under a key: a trusting reader that signs replaces it with a signed one.
    const k = keyPair();
    const d2 = await project({ 'src/app.ts': 'same\n' });
    const signer = await cacheOf(repo, { signingKey: k.priv, trustedKeys: [k.pub] });
    const r = await signer.run(spec(d2), builder(d2, 'signed'));
    expect(r).toMatchObject({ status: 'saved', missReason: 'untrusted' });
    const d3 = await project({ 'src/app.ts': 'same\n' });
    const reader = await cacheOf(repo, { trustedKeys: [k.pub] });
    expect((await reader.run(spec(d3), builder(d3, 'reader'))).status).toBe('restored');
    expect(await out(d3)).toBe('signed:same\n');
  });
});

describe('scoped writes, fallback reads', () => {
  it('a run writes only its own scope and reads the scopes in order; a hit says which', async () => {
    const dir = await project({ 'src/app.ts': 'shared\n' });
    // main and the base branch both hold the key, with different outputs.
    await (await cacheOf('scopes/main')).run(spec(dir), builder(dir, 'main'));
    await (await cacheOf('scopes/base')).run(spec(dir), builder(dir, 'base'));
    const scopes = [reg.ociUrl('scopes/base'), reg.ociUrl('scopes/main')];

    const pr = await cacheOf('scopes/pr-1', { readScopes: scopes });
    const d1 = await project({ 'src/app.ts': 'shared\n' });
    const hit = await pr.run(spec(d1), builder(d1, 'pr'));
    expect(hit).toMatchObject({ status: 'restored', scope: expect.stringContaining('scopes/base') });
    expect(await out(d1)).toBe('base:shared\n');
    const reversed = await cacheOf('scopes/pr-1', { readScopes: [...scopes].reverse() });
    const d2 = await project({ 'src/app.ts': 'shared\n' });
    expect((await reversed.run(spec(d2), builder(d2, 'pr'))).scope).toContain('scopes/main');
    expect(await out(d2)).toBe('main:shared\n');
    expect(await tags('scopes/pr-1')).toEqual([]);

    // A miss everywhere builds and saves into the own scope only.
    const d3 = await project({ 'src/app.ts': 'new in the PR\n' });
    const saved = await pr.run(spec(d3), builder(d3, 'pr'));
    expect(saved.status).toBe('saved');
    expect(await tags('scopes/pr-1')).toContain(saved.key);
    expect(await tags('scopes/main')).not.toContain(saved.key);
    expect(await tags('scopes/base')).not.toContain(saved.key);
  });
});

describe("readOnly: 'auto'", () => {
  it('a fork pull request on GitHub Actions pushes nothing and says why; readOnly: false overrides', async () => {
    const repo = 'trust/fork';
    const eventDir = await temp('tc-trust-event-');
    const eventPath = join(eventDir, 'event.json');
    await writeFile(
      eventPath,
      JSON.stringify({
        pull_request: {
          head: { repo: { full_name: 'mallory/app' } },
          base: { repo: { full_name: 'acme/app' } },
        },
      }),
    );
    const env = { HOME: home, GITHUB_EVENT_NAME: 'pull_request', GITHUB_EVENT_PATH: eventPath };
    const dir = await project();
    const cache = await cacheOf(repo, { env });
    const r = await cache.run(spec(dir), builder(dir));
    expect(r).toMatchObject({ status: 'built', reason: 'read-only' });
    const ev = cache.events.find((e) => e.type === 'read-only');
    expect(ev && formatEvent(ev)).toBe(
      'task: "build" cache is read-only: GitHub Actions pull_request from the fork mallory/app',
    );
    expect(await tags(repo)).toEqual([]);

    const explicit = await cacheOf(repo, { env, readOnly: false });
    expect((await explicit.run(spec(dir), builder(dir))).status).toBe('saved');
    expect((await tags(repo)).length).toBeGreaterThan(0);
  });
});
