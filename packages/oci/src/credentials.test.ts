import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  credentialSources,
  credentialsFromConfig,
  defaultAuthFiles,
  resolveCredentials,
} from './credentials.js';
import { InvalidOptionError } from './errors.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('credentialsFromConfig', () => {
  it('decodes auth, splitting at the first ":" (user with $, password with :)', () => {
    const config = { auths: { 'harbor.example.com': { auth: b64('robot$proj+ci:pa:ss:word') } } };
    expect(credentialsFromConfig(config, 'harbor.example.com')).toEqual({
      username: 'robot$proj+ci',
      password: 'pa:ss:word',
    });
  });
  it('matches URL-shaped keys and ports, case-insensitively', () => {
    const config = {
      auths: {
        'https://index.docker.io/v1/': { auth: b64('a:b') },
        'HTTP://Reg.Example:5000': { username: 'u', password: 'p' },
      },
    };
    expect(credentialsFromConfig(config, 'index.docker.io')).toEqual({ username: 'a', password: 'b' });
    expect(credentialsFromConfig(config, 'reg.example:5000')).toEqual({ username: 'u', password: 'p' });
    expect(credentialsFromConfig(config, 'reg.example')).toBeUndefined();
  });
  it('ignores broken entries', () => {
    expect(credentialsFromConfig(null, 'h')).toBeUndefined();
    expect(credentialsFromConfig({ auths: { h: { auth: b64('no-colon') } } }, 'h')).toBeUndefined();
    expect(credentialsFromConfig({ auths: { h: 'str' } }, 'h')).toBeUndefined();
    expect(credentialsFromConfig({ credHelpers: { h: 'x' } }, 'h')).toBeUndefined();
  });
});

describe('resolveCredentials', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oci-cred-'));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ auths: { 'docker.example': { auth: b64('d:1') } } }),
    );
    await writeFile(
      join(dir, 'auth.json'),
      JSON.stringify({ auths: { 'podman.example': { auth: b64('p:2') } } }),
    );
    await writeFile(join(dir, 'broken.json'), '{not json');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prefers options, then env, then files in order', async () => {
    const files = [
      join(dir, 'broken.json'),
      join(dir, 'missing.json'),
      join(dir, 'config.json'),
      join(dir, 'auth.json'),
    ];
    expect(
      await resolveCredentials('docker.example', {
        credentials: { username: 'o', password: 'x' },
        configFiles: files,
      }),
    ).toEqual({ username: 'o', password: 'x' });
    expect(
      await resolveCredentials('docker.example', {
        env: { TASK_CACHE_OCI_USER: 'e', TASK_CACHE_OCI_PASSWORD: 'y:z' },
        configFiles: files,
      }),
    ).toEqual({ username: 'e', password: 'y:z' });
    expect(await resolveCredentials('docker.example', { env: {}, configFiles: files })).toEqual({
      username: 'd',
      password: '1',
    });
    expect(await resolveCredentials('podman.example', { env: {}, configFiles: files })).toEqual({
      username: 'p',
      password: '2',
    });
    expect(await resolveCredentials('other.example', { env: {}, configFiles: files })).toBeUndefined();
    expect(await resolveCredentials('docker.example', { env: {}, configFiles: null })).toBeUndefined();
  });

  it('finds $DOCKER_CONFIG/config.json and $XDG_RUNTIME_DIR/containers/auth.json by default', async () => {
    const xdg = join(dir, 'xdg');
    await import('node:fs/promises').then((fs) => fs.mkdir(join(xdg, 'containers'), { recursive: true }));
    await writeFile(
      join(xdg, 'containers', 'auth.json'),
      JSON.stringify({ auths: { 'x.example': { auth: b64('x:3') } } }),
    );
    const env = { DOCKER_CONFIG: dir, XDG_RUNTIME_DIR: xdg, HOME: '/nonexistent' };
    expect(defaultAuthFiles(env)).toEqual([
      join(dir, 'config.json'),
      join(xdg, 'containers', 'auth.json'),
      '/nonexistent/.config/containers/auth.json',
    ]);
    expect(defaultAuthFiles({ HOME: '/home/u' })).toEqual([
      '/home/u/.docker/config.json',
      '/home/u/.config/containers/auth.json',
    ]);
    expect(await resolveCredentials('x.example', { env })).toEqual({ username: 'x', password: '3' });
    expect(await resolveCredentials('docker.example', { env })).toEqual({ username: 'd', password: '1' });
  });

  // Regression (issue 16): docs/troubleshooting.md listed REGISTRY_AUTH_FILE, which was never read.
  it("reads $REGISTRY_AUTH_FILE first, then podman's $XDG_CONFIG_HOME/containers/auth.json", async () => {
    const podman = join(dir, 'cfg');
    await import('node:fs/promises').then((fs) => fs.mkdir(join(podman, 'containers'), { recursive: true }));
    await writeFile(
      join(podman, 'containers', 'auth.json'),
      JSON.stringify({ auths: { 'p.example': { auth: b64('p:5') } } }),
    );
    const authFile = join(dir, 'registry-auth.json');
    await writeFile(authFile, JSON.stringify({ auths: { 'docker.example': { auth: b64('r:4') } } }));
    const env = {
      REGISTRY_AUTH_FILE: authFile,
      DOCKER_CONFIG: dir,
      XDG_CONFIG_HOME: podman,
      HOME: '/nonexistent',
    };
    expect(defaultAuthFiles(env)[0]).toBe(authFile);
    expect(await resolveCredentials('docker.example', { env })).toEqual({ username: 'r', password: '4' });
    expect(await resolveCredentials('p.example', { env })).toEqual({ username: 'p', password: '5' });
    expect(credentialSources({ env })).toEqual([
      'TASK_CACHE_OCI_USER/TASK_CACHE_OCI_PASSWORD',
      ...defaultAuthFiles(env),
    ]);
  });

  it('refuses a half-set environment pair without echoing the value', async () => {
    const error = await resolveCredentials('h', { env: { TASK_CACHE_OCI_PASSWORD: 'hunter2' } }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as Error).message).toMatch(/TASK_CACHE_OCI_USER and TASK_CACHE_OCI_PASSWORD/);
    expect((error as Error).message).not.toContain('hunter2');
  });
});
