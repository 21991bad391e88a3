/**
 * Where registry credentials come from, in order: explicit options, the environment
 * (`TASK_CACHE_OCI_USER` / `TASK_CACHE_OCI_PASSWORD`), then the `auths` of the auth files users
 * already have: `$REGISTRY_AUTH_FILE` (podman, skopeo, buildah), docker's
 * `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, then podman's
 * `${XDG_RUNTIME_DIR}/containers/auth.json` and `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionError } from './errors.js';

/** A username and password (or identity token as password). */
export interface Credentials {
  username: string;
  password: string;
}

/** Where {@link resolveCredentials} looks. */
export interface ResolveCredentialsOptions {
  /** Explicit credentials; win over everything else. */
  credentials?: Credentials;
  /**
   * Environment to read `TASK_CACHE_OCI_USER`/`TASK_CACHE_OCI_PASSWORD`, `DOCKER_CONFIG`,
   * `XDG_RUNTIME_DIR` and `HOME` from.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * Auth files to read, in order. `null` disables config files.
   * @default {@link defaultAuthFiles}`(env)`
   */
  configFiles?: string[] | null;
}

/**
 * Default auth file locations for an environment, in the order they are read:
 * `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`),
 * `${XDG_RUNTIME_DIR}/containers/auth.json`, `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`.
 */
export function defaultAuthFiles(env: Record<string, string | undefined> = process.env): string[] {
  const files: string[] = [];
  const home = env.HOME || homedir();
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  files.push(
    env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(home, '.docker', 'config.json'),
  );
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'));
  return [...new Set(files)];
}

/**
 * Where {@link resolveCredentials} looks, for messages ("no credentials were found for HOST
 * (looked in …)"): the environment variables, then each auth file.
 */
export function credentialSources(options: ResolveCredentialsOptions = {}): string[] {
  if (options.credentials) return ['the credentials option'];
  const env = options.env ?? process.env;
  const files = options.configFiles === null ? [] : (options.configFiles ?? defaultAuthFiles(env));
  return ['TASK_CACHE_OCI_USER/TASK_CACHE_OCI_PASSWORD', ...files];
}

/**
 * Finds credentials for `registry` (`host[:port]`) in a parsed `config.json`: matches `auths` keys
 * equal to the host, or URLs whose host is it (`https://host/v1/`, `http://host`). The `auth`
 * field is base64 `user:password`, split at the FIRST `:` (usernames such as `robot$x+y` have no
 * `:`, passwords may). `identitytoken`/`credHelpers` are not supported.
 */
export function credentialsFromConfig(config: unknown, registry: string): Credentials | undefined {
  if (typeof config !== 'object' || config === null) return undefined;
  const auths = (config as { auths?: unknown }).auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const wanted = registry.toLowerCase();
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (normalizeAuthKey(key) !== wanted) continue;
    if (typeof entry !== 'object' || entry === null) continue;
    const { auth, username, password } = entry as Record<string, unknown>;
    if (typeof auth === 'string' && auth.length > 0) {
      const decoded = Buffer.from(auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) continue;
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (typeof username === 'string' && typeof password === 'string' && username) {
      return { username, password };
    }
  }
  return undefined;
}

function normalizeAuthKey(key: string): string {
  let k = key.trim().toLowerCase();
  k = k.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  return k;
}

/**
 * Resolves credentials for `registry` (`host[:port]`): options, then environment, then auth files.
 * `undefined` means anonymous. A half-set environment pair is an {@link InvalidOptionError}.
 */
export async function resolveCredentials(
  registry: string,
  options: ResolveCredentialsOptions = {},
): Promise<Credentials | undefined> {
  if (options.credentials) return options.credentials;
  const env = options.env ?? process.env;
  const user = env.TASK_CACHE_OCI_USER;
  const password = env.TASK_CACHE_OCI_PASSWORD;
  if (user || password) {
    if (!user || password === undefined) {
      throw new InvalidOptionError(
        'TASK_CACHE_OCI_USER and TASK_CACHE_OCI_PASSWORD must be set together (only one is set)',
      );
    }
    return { username: user, password };
  }
  const files = options.configFiles === null ? [] : (options.configFiles ?? defaultAuthFiles(env));
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // A broken config file belongs to another tool; do not fail the cache over it.
      continue;
    }
    const found = credentialsFromConfig(json, registry);
    if (found) return found;
  }
  return undefined;
}
