/**
 * `task-cache doctor` through the built binary against the real registry (token auth, TLS with the
 * testkit's private CA, like Harbor) and redis-server (issue 21): all ok for the guide's set-up, and
 * `fail` with the fix for each misconfiguration the issue lists. No password ever in the output.
 */

import { mkdir } from 'node:fs/promises';
import {
  type RedisFixture,
  type RegistryFixture,
  startQuirkProxy,
  startRedis,
  startRegistry,
} from '@task-cache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, requireBuilt, sandbox } from './helpers.js';

let reg: RegistryFixture;
let redis: RedisFixture;
let box: Awaited<ReturnType<typeof sandbox>>;
const ROBOT = { username: 'robot$task-cache+ci', password: 's3cr:et/pa ss-doctor-robot' };

beforeAll(async () => {
  requireBuilt();
  box = await sandbox();
  await mkdir(box.project, { recursive: true });
  [reg, redis] = await Promise.all([
    startRegistry({
      mode: 'token',
      users: [{ ...ROBOT, access: { 'task-cache/*': ['pull', 'push', 'delete'], 'readonly/*': ['pull'] } }],
    }),
    startRedis({ maxmemory: '64mb' }),
  ]);
});
afterAll(async () => {
  await Promise.all([reg?.close(), redis?.stop()]);
  await box?.cleanup();
});

const env = (over: Record<string, string> = {}) => ({
  ...box.env,
  TASK_CACHE_OCI_USER: ROBOT.username,
  TASK_CACHE_OCI_PASSWORD: ROBOT.password,
  ...over,
});

interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

/** Runs doctor (text output, or `--json`) and reads its checks; asserts no password was printed. */
async function doctor(args: string[], e = env(), json = false) {
  const r = await cli(['doctor', ...(json ? ['--json'] : []), ...args], box.project, e);
  for (const out of [r.stdout, r.stderr]) {
    expect(out).not.toContain(ROBOT.password);
    expect(out).not.toContain(redis.password!);
  }
  let checks: Check[];
  if (json) checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks;
  else {
    checks = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^(ok|warn|fail) +([^:]+): (.*)$/.exec(line);
      if (m) checks.push({ status: m[1] as Check['status'], name: m[2]!, detail: m[3]! });
      else if (line.startsWith('      fix: ')) checks.at(-1)!.fix = line.slice('      fix: '.length);
    }
  }
  return { code: r.code, text: r.stdout, checks, byName: new Map(checks.map((c) => [c.name, c])) };
}

describe('task-cache doctor', () => {
  it("the guide's set-up: every check ok, exit 0", async () => {
    const r = await doctor(['--cache', reg.ociUrl('task-cache/build'), '--lock', redis.url('lock:ci')]);
    expect(
      r.checks.filter((c) => c.status !== 'ok'),
      r.text,
    ).toEqual([]);
    expect(r.code).toBe(0);
    expect([...r.byName.keys()]).toEqual([
      'registry reachable',
      'registry TLS',
      'registry credentials',
      'registry push',
      'registry pull',
      'registry media types',
      'registry capabilities',
      'registry tag listing',
      'registry delete',
      'redis reachable',
      'redis password required',
      'redis credentials',
      'redis version',
      'redis maxmemory-policy',
      'redis maxmemory',
      'redis persistence',
      'redis SET NX PX',
    ]);
    expect(r.text).toMatch(/^ok {4}registry push: /m);
    // The media types probed are those of the format saves write: version 2 by default.
    expect(r.byName.get('registry media types')?.detail).toBe(
      'accepts application/vnd.task-cache.entry.v2 manifests (the standard entry form)',
    );
    // The throw-away manifest is gone: no tag, nothing left behind.
    expect(r.byName.get('registry delete')?.detail).toContain('deleted');
    // distribution over TLS: monolithic uploads, Range, HTTP/2 by ALPN, no referrers API (2.8).
    expect(r.byName.get('registry capabilities')?.detail).toBe(
      'monolithic upload yes, Range on blobs yes, referrers API no, HTTP/2 yes',
    );
  });

  it('--format-version 1 (or TASK_CACHE_FORMAT_VERSION) probes the media types of version 1; a bad value is a usage error', async () => {
    const url = reg.ociUrl('task-cache/build');
    const flag = await doctor(['--cache', url, '--format-version', '1']);
    expect(flag.byName.get('registry media types')?.detail).toBe(
      'accepts application/vnd.task-cache.entry.v1 manifests (the standard entry form)',
    );
    const twin = await doctor(['--cache', url], env({ TASK_CACHE_FORMAT_VERSION: '1' }));
    expect(twin.byName.get('registry media types')?.detail).toContain('entry.v1 manifests');
    const bad = await cli(['doctor', '--cache', url, '--format-version', '3'], box.project, env());
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('doctor: --format-version: expected 1 or 2, got "3"');
  });

  it('a registry that allowlists media types (the gitlab quirk profile): warn, the compatible form is taken, exit 0', async () => {
    const plain = await startRegistry({ mode: 'anonymous' });
    const proxy = await startQuirkProxy({ upstream: plain.baseUrl, profile: 'gitlab' });
    try {
      const r = await doctor(['--cache', `oci://${proxy.host}/group/project/cache?plain-http=true`]);
      const media = r.byName.get('registry media types');
      expect(media?.status, r.text).toBe('warn');
      expect(media?.detail).toContain('refused the standard entry form (MANIFEST_INVALID)');
      expect(media?.fix).toContain('?format=compat');
      expect(r.checks.filter((c) => c.status === 'fail')).toEqual([]);
      expect(r.code).toBe(0);
      expect(proxy.refusals.filter((x) => x.rule === 'media-type-allowlist')).toHaveLength(1);
    } finally {
      await proxy.close();
      await plain.close();
    }
  });

  it('the environment twins TASK_CACHE_URL / TASK_CACHE_LOCK_URL, --json', async () => {
    const r = await doctor(
      [],
      env({ TASK_CACHE_URL: reg.ociUrl('task-cache/build'), TASK_CACHE_LOCK_URL: redis.url('lock:ci') }),
      true,
    );
    expect(r.code).toBe(0);
    expect(r.byName.get('registry push')?.status).toBe('ok');
    expect(r.byName.get('redis SET NX PX')?.status).toBe('ok');
  });

  it.each([
    [
      'wrong registry password',
      () => ({ args: [] as string[], env: { TASK_CACHE_OCI_PASSWORD: 'wrong' } }),
      'registry credentials',
      'TASK_CACHE_OCI_PASSWORD',
    ],
    [
      'missing CA',
      () => ({ args: ['--cache', reg.ociUrl('task-cache/build').split('?')[0]!], env: {} }),
      'registry TLS',
      'TASK_CACHE_OCI_CA',
    ],
    [
      'a repository the robot cannot push to',
      () => ({ args: ['--cache', reg.ociUrl('readonly/build')], env: {} }),
      'registry push',
      'push (and pull) permission on the repository readonly/build',
    ],
    [
      'wrong Redis password',
      () => ({ args: ['--lock', redis.url('lock:ci').replace(/:[^:@/]+@/, ':wrong@')], env: {} }),
      'redis credentials',
      'password',
    ],
  ])('%s: fail with the fix', async (_, setup, check, fix) => {
    const { args, env: over } = setup();
    const all = ['--cache', reg.ociUrl('task-cache/build'), '--lock', redis.url('lock:ci'), ...args];
    const r = await doctor(all, env(over));
    expect(r.code).toBe(1);
    const c = r.byName.get(check);
    expect(c?.status, r.text).toBe('fail');
    expect(c?.fix).toContain(fix);
  });

  it('Redis without a password: fail with the fix', async () => {
    const open = await startRedis({ password: null });
    try {
      const r = await doctor(['--cache', reg.ociUrl('task-cache/build'), '--lock', open.url('lock:ci')]);
      expect(r.code).toBe(1);
      expect(r.byName.get('redis password required')).toMatchObject({ status: 'fail' });
      expect(r.byName.get('redis password required')?.fix).toContain('requirepass');
    } finally {
      await open.stop();
    }
  });

  it('allkeys-lru, then persistence on: fail with the fix', async () => {
    const args = ['--cache', reg.ociUrl('task-cache/build'), '--lock', redis.url('lock:ci')];
    await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const r = await doctor(args);
      expect(r.code).toBe(1);
      expect(r.byName.get('redis maxmemory-policy')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining('allkeys-lru'),
      });
      expect(r.byName.get('redis maxmemory-policy')?.fix).toContain('noeviction');
    } finally {
      await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    }
    await redis.command('CONFIG', 'SET', 'save', '900 1');
    try {
      const r = await doctor(args);
      expect(r.code).toBe(1);
      expect(r.byName.get('redis persistence')).toMatchObject({ status: 'fail' });
      expect(r.byName.get('redis persistence')?.fix).toContain('save ""');
    } finally {
      await redis.command('CONFIG', 'SET', 'save', '');
    }
    await redis.command('CONFIG', 'SET', 'appendonly', 'yes');
    try {
      const r = await doctor(args);
      expect(r.byName.get('redis persistence')).toMatchObject({ status: 'fail', detail: 'appendonly yes' });
    } finally {
      await redis.command('CONFIG', 'SET', 'appendonly', 'no');
    }
  });

  it('an unreachable registry and Redis: fail, exit 1', async () => {
    const r = await doctor([
      '--cache',
      'oci://127.0.0.1:1/task-cache/build',
      '--lock',
      'redis://:pw@127.0.0.1:1/lock:x',
    ]);
    expect(r.code).toBe(1);
    expect(r.byName.get('registry reachable')?.status).toBe('fail');
    expect(r.byName.get('redis reachable')?.status).toBe('fail');
  });
});
