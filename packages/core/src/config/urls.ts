import { isValidRegistry, isValidRepository, redactUrl } from '@task-cache/oci';
import { validateKey } from '../key/urlsafe.js';
import { CacheConfigError } from './errors.js';

// URL redaction is `@task-cache/oci`'s one implementation (`scheme://***:***@host…`), re-exported
// under core's public name.
export { redactUrl } from '@task-cache/oci';

/** A parsed store URL (see {@link parseStoreUrl}). */
export type StoreUrl =
  | {
      kind: 'oci';
      /** `HOST[:PORT]`. */
      registry: string;
      /** Repository path, e.g. `task-cache/build`. */
      repository: string;
      /** The tag of the URL: when present it is the cache key. */
      tag?: string;
      /** CA file path from `?ca=`. */
      ca?: string;
      /** `?plain-http=true`: talk HTTP instead of HTTPS. */
      plainHttp: boolean;
      /** `?max-pushes-per-minute=N`: cap on blob pushes per minute (registries that rate-limit them). */
      maxBlobPushesPerMinute?: number;
      /** `?format=`: the entry form to write (`SaveEntryOptions.format`); absent means `auto`. */
      format?: 'auto' | 'standard' | 'compat';
    }
  | { kind: 'oci-layout'; path: string; tag?: string }
  | {
      kind: 'redis';
      /** Connection URL (credentials kept: never print it; use {@link redactUrl}). */
      url: string;
      /** `?ttl=` in seconds. */
      ttlSeconds?: number;
    }
  | { kind: 'memory'; name: string; tag?: string }
  | { kind: 'default' };

const fail = (url: string, why: string): never => {
  throw new CacheConfigError('CACHE_ERR_INVALID_URL', `invalid cache URL "${redactUrl(url)}": ${why}`);
};

function splitTag(path: string): { path: string; tag?: string } {
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/') && colon > 0) {
    return { path: path.slice(0, colon), tag: path.slice(colon + 1) };
  }
  return { path };
}

function checkTag(url: string, tag: string | undefined): string | undefined {
  if (tag === undefined) return undefined;
  if (tag === '') fail(url, 'the tag after ":" is empty; remove the ":" or give a tag');
  validateKey(tag);
  return tag;
}

/**
 * Parses a store URL:
 *
 * - `oci://HOST[:PORT]/PROJECT/REPO[:TAG][?ca=PATH&plain-http=true&format=compat&max-pushes-per-minute=N]`
 *   — an OCI registry (HTTPS, or HTTP with `plain-http=true`; `ca=` a CA file; `format=` the entry
 *   form to write: `auto` by default, `compat` for registries that allowlist media types;
 *   `max-pushes-per-minute=` caps blob pushes for registries that rate-limit them, e.g. GHCR's
 *   ~2,000 a minute). Credentials never go in the URL: they come
 *   from `TASK_CACHE_OCI_USER`/`TASK_CACHE_OCI_PASSWORD` or docker/podman `config.json`.
 * - `oci-layout:PATH[:TAG]` — a local OCI image-layout directory; the tag after the last `:`.
 * - `redis://…` / `rediss://…` — small entries in Redis (`@task-cache/core/redis`), `?ttl=SECONDS`.
 * - `memory://NAME[:TAG]` — an in-process store shared by every cache using the same name.
 * - `''` — the embedded default: an image layout in `defaultCacheDir()`.
 *
 * A tag, when present, is the cache key; it is validated here (a configuration-time
 * {@link CacheConfigError}, not a registry 404 later).
 * @throws {CacheConfigError} `CACHE_ERR_INVALID_URL` / `CACHE_ERR_INVALID_KEY`, naming the problem and the remedy.
 */
export function parseStoreUrl(url: string): StoreUrl {
  if (url === undefined || url === null || url.trim() === '') return { kind: 'default' };
  if (typeof url !== 'string') fail(String(url), 'expected a string');
  const text = url.trim();
  if (text.startsWith('oci://')) {
    const rest = text.slice('oci://'.length);
    // NOTE: user-info is found the way redaction finds it (on the raw string: a password may hold
    // `/ ? # @`), so no later message quotes a piece of it as a "repository" or a "tag".
    if (redactUrl(text).startsWith('oci://***'))
      fail(
        text,
        'credentials do not belong in the URL (it ends up in task files and logs); set TASK_CACHE_OCI_USER and TASK_CACHE_OCI_PASSWORD, or log in with docker/podman',
      );
    const q = rest.indexOf('?');
    const main = q === -1 ? rest : rest.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : rest.slice(q + 1));
    const slash = main.indexOf('/');
    const registry = slash === -1 ? main : main.slice(0, slash);
    if (registry.includes('@'))
      fail(
        text,
        'credentials do not belong in the URL (it ends up in task files and logs); set TASK_CACHE_OCI_USER and TASK_CACHE_OCI_PASSWORD, or log in with docker/podman',
      );
    if (!isValidRegistry(registry)) fail(text, 'expected oci://HOST[:PORT]/REPOSITORY[:TAG]');
    const { path: repository, tag } = splitTag(slash === -1 ? '' : main.slice(slash + 1));
    if (repository === '') fail(text, 'the repository is missing: oci://HOST[:PORT]/PROJECT/REPO[:TAG]');
    if (!isValidRepository(repository))
      fail(
        text,
        `repository "${repository}" is not a valid OCI repository name (lowercase [a-z0-9], separators . _ __ - and /)`,
      );
    for (const name of query.keys()) {
      if (name !== 'ca' && name !== 'plain-http' && name !== 'format' && name !== 'max-pushes-per-minute')
        fail(text, `unknown parameter "${name}" (known: ca, plain-http, format, max-pushes-per-minute)`);
    }
    const format = query.get('format');
    if (format !== null && format !== 'auto' && format !== 'standard' && format !== 'compat')
      fail(text, 'format must be auto, standard or compat');
    const pushes = query.get('max-pushes-per-minute');
    if (pushes !== null && !/^[1-9][0-9]{0,8}$/.test(pushes))
      fail(text, 'max-pushes-per-minute must be a positive integer');
    const plain = query.get('plain-http');
    if (plain !== null && plain !== 'true' && plain !== 'false')
      fail(text, 'plain-http must be true or false');
    const ca = query.get('ca');
    if (ca === '') fail(text, 'ca= needs the path of a CA file');
    const out: StoreUrl = { kind: 'oci', registry, repository, plainHttp: plain === 'true' };
    const t = checkTag(text, tag);
    if (t !== undefined) out.tag = t;
    if (ca !== null) out.ca = ca;
    if (format !== null) out.format = format as 'auto' | 'standard' | 'compat';
    if (pushes !== null) out.maxBlobPushesPerMinute = Number(pushes);
    return out;
  }
  if (text.startsWith('oci-layout:')) {
    let rest = text.slice('oci-layout:'.length);
    if (rest.startsWith('//')) rest = rest.slice(2);
    const { path, tag } = splitTag(rest);
    if (path === '') fail(text, 'the directory is missing: oci-layout:PATH[:TAG]');
    const t = checkTag(text, tag);
    return t === undefined ? { kind: 'oci-layout', path } : { kind: 'oci-layout', path, tag: t };
  }
  if (text.startsWith('memory://')) {
    const { path: name, tag } = splitTag(text.slice('memory://'.length));
    if (name === '') fail(text, 'the store name is missing: memory://NAME[:TAG]');
    const t = checkTag(text, tag);
    return t === undefined ? { kind: 'memory', name } : { kind: 'memory', name, tag: t };
  }
  if (text.startsWith('redis://') || text.startsWith('rediss://')) {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch (cause) {
      throw new CacheConfigError(
        'CACHE_ERR_INVALID_URL',
        `invalid cache URL "${redactUrl(text)}": not a URL`,
        { cause: safeUrlCause(cause) },
      );
    }
    if (parsed.hostname === '')
      fail(text, 'the host is missing: redis://[USER][:PASSWORD]@HOST[:PORT][/DB][?ttl=SECONDS]');
    const out: StoreUrl = { kind: 'redis', url: text };
    const ttl = parsed.searchParams.get('ttl');
    if (ttl !== null) {
      const n = Number(ttl);
      if (!Number.isInteger(n) || n <= 0)
        fail(text, `ttl must be a positive number of seconds, got "${ttl}"`);
      out.ttlSeconds = n;
    }
    return out;
  }
  return fail(
    text,
    'unknown scheme; use oci://, oci-layout:, redis://, rediss://, memory:// or leave it empty',
  );
}

/**
 * The cause to keep for a failed `new URL(text)`: Node's `TypeError` carries the whole input
 * (`error.input`, shown by `JSON.stringify` and by util.inspect), password included. A copy with
 * the same name, code and (redacted) message, and nothing else.
 */
export function safeUrlCause(error: unknown): Error {
  const copy = new TypeError(redactUrl(error instanceof Error ? error.message : String(error)));
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') Object.defineProperty(copy, 'code', { value: code, enumerable: true });
  return copy;
}
