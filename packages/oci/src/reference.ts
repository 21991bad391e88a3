/**
 * `oci://` references: `oci://HOST[:PORT]/REPO[:TAG|@DIGEST][?ca=PATH&plain-http=true]`.
 *
 * Grammar from OCI distribution-spec v1.1.1
 * (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pulling-manifests):
 * repository `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
 * tag `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. Every check runs before any request.
 */
import { isDigest } from './digest.js';
import { InvalidReferenceError, NameInvalidError, TagInvalidError } from './errors.js';
import { redactUrl } from './redact.js';

/** A parsed `oci://` reference. */
export interface OciReference {
  /** `host[:port]` of the registry (IPv6 hosts keep their brackets). */
  registry: string;
  /** Repository name, e.g. `team/cache`. */
  repository: string;
  /** Tag, when the reference names one. */
  tag?: string;
  /** Digest, when the reference names one (`@sha256:…`). */
  digest?: string;
  /** Path of a PEM CA bundle (`?ca=`), trusted in addition to the system CAs. */
  ca?: string;
  /** `true` for `?plain-http=true`: talk plain HTTP instead of HTTPS. */
  plainHttp: boolean;
}

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const HOST_RE =
  /^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?$/;

/**
 * THE OCI tag grammar (distribution-spec v1.1.1): `^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`. Every
 * tag check in the project uses this (core's `TAG_PATTERN` is this very object).
 */
export const TAG_PATTERN: RegExp = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Longest tag a registry accepts (distribution-spec v1.1.1). */
export const MAX_TAG_LENGTH = 128;

/** Longest repository name (distribution-spec v1.1.1 advises clients to stay within 255). */
export const MAX_REPOSITORY_LENGTH = 255;

/** `true` when `tag` matches {@link TAG_PATTERN}. */
export function isValidTag(tag: unknown): tag is string {
  return typeof tag === 'string' && TAG_PATTERN.test(tag);
}

/**
 * `true` when `host` is a registry `host[:port]`: a DNS name, an IPv4 address or a bracketed
 * IPv6 address, with an optional port 1..65535. No scheme, path or credentials.
 */
export function isValidRegistry(host: unknown): host is string {
  if (typeof host !== 'string') return false;
  const match = HOST_RE.exec(host);
  if (!match) return false;
  return match[1] === undefined || (Number(match[1]) >= 1 && Number(match[1]) <= 65535);
}

/**
 * Throws {@link TagInvalidError} naming the problem when `tag` is not a valid OCI tag.
 */
export function validateTag(tag: string): string {
  if (typeof tag !== 'string' || tag.length === 0) {
    throw new TagInvalidError('tag must be a non-empty string');
  }
  if (tag.length > MAX_TAG_LENGTH) {
    throw new TagInvalidError(`tag is ${tag.length} characters long; at most ${MAX_TAG_LENGTH} are allowed`);
  }
  if (!TAG_PATTERN.test(tag)) {
    const first = tag[0];
    if (first === '.' || first === '-') {
      throw new TagInvalidError(`tag ${JSON.stringify(tag)} may not start with ${JSON.stringify(first)}`);
    }
    throw new TagInvalidError(
      `tag ${JSON.stringify(tag)} contains characters outside [A-Za-z0-9._-] (pattern ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$)`,
    );
  }
  return tag;
}

/** `true` when `name` matches the distribution-spec repository grammar. */
export function isValidRepository(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_RE.test(name);
}

/**
 * Throws {@link NameInvalidError} naming the problem when `name` is not a valid repository name.
 */
export function validateRepository(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new NameInvalidError('repository name must be a non-empty string');
  }
  if (name.length > MAX_REPOSITORY_LENGTH) {
    throw new NameInvalidError(
      `repository name is ${name.length} characters long; at most ${MAX_REPOSITORY_LENGTH} are allowed`,
    );
  }
  if (!REPOSITORY_RE.test(name)) {
    const hint = /[A-Z]/.test(name)
      ? ' (repository names must be lowercase)'
      : ' (lowercase path components of [a-z0-9] separated by ".", "_", "__" or "-", joined by "/")';
    throw new NameInvalidError(`repository name ${JSON.stringify(name)} is invalid${hint}`);
  }
  return name;
}

/**
 * Parses `oci://HOST[:PORT]/REPO[:TAG|@DIGEST][?ca=PATH&plain-http=true]`.
 * @throws {InvalidReferenceError} naming what is wrong (scheme, host, repository, tag, digest,
 *   query parameter), before any request is made.
 */
export function parseReference(input: string): OciReference {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidReferenceError('OCI reference must be a non-empty string');
  }
  const shown = JSON.stringify(redactUrl(input));
  if (!input.startsWith('oci://')) {
    throw new InvalidReferenceError(`OCI reference ${shown} must start with "oci://"`);
  }
  let rest = input.slice('oci://'.length);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  if (rest.includes('#')) {
    throw new InvalidReferenceError(`OCI reference ${shown} may not contain a fragment ("#")`);
  }
  const slash = rest.indexOf('/');
  if (slash < 0) {
    throw new InvalidReferenceError(`OCI reference ${shown} has no repository (expected oci://HOST/REPO)`);
  }
  const registry = rest.slice(0, slash);
  if (registry.includes('@')) {
    throw new InvalidReferenceError(
      `OCI reference ${shown} may not carry credentials in the host; use options, the environment or config.json`,
    );
  }
  const hostMatch = HOST_RE.exec(registry);
  if (registry.length === 0 || !hostMatch) {
    throw new InvalidReferenceError(`OCI reference ${shown} has an invalid host ${JSON.stringify(registry)}`);
  }
  if (hostMatch[1] !== undefined) {
    const port = Number(hostMatch[1]);
    if (port < 1 || port > 65535) {
      throw new InvalidReferenceError(`OCI reference ${shown} has an invalid port ${hostMatch[1]}`);
    }
  }
  let path = rest.slice(slash + 1);
  let digest: string | undefined;
  let tag: string | undefined;
  const at = path.indexOf('@');
  if (at >= 0) {
    digest = path.slice(at + 1);
    path = path.slice(0, at);
    if (!isDigest(digest)) {
      throw new InvalidReferenceError(
        `OCI reference ${shown} has an invalid digest ${JSON.stringify(digest)} (expected sha256: and 64 lowercase hex characters)`,
      );
    }
  }
  const lastSlash = path.lastIndexOf('/');
  const colon = path.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    try {
      validateTag(tag);
    } catch (error) {
      throw new InvalidReferenceError(`OCI reference ${shown}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  try {
    validateRepository(path);
  } catch (error) {
    throw new InvalidReferenceError(`OCI reference ${shown}: ${(error as Error).message}`, { cause: error });
  }
  const reference: OciReference = { registry, repository: path, plainHttp: false };
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  if (query) {
    const params = new URLSearchParams(query);
    for (const [key, value] of params) {
      if (key === 'ca') {
        if (!value) throw new InvalidReferenceError(`OCI reference ${shown}: "ca" needs a file path`);
        reference.ca = value;
      } else if (key === 'plain-http') {
        if (value !== 'true' && value !== 'false') {
          throw new InvalidReferenceError(
            `OCI reference ${shown}: "plain-http" must be "true" or "false", got ${JSON.stringify(value)}`,
          );
        }
        reference.plainHttp = value === 'true';
      } else {
        throw new InvalidReferenceError(
          `OCI reference ${shown} has an unknown query parameter ${JSON.stringify(key)} (known: ca, plain-http)`,
        );
      }
    }
  }
  return reference;
}

/** Formats a reference back to its `oci://` form. */
export function formatReference(reference: OciReference): string {
  let out = `oci://${reference.registry}/${reference.repository}`;
  if (reference.tag !== undefined) out += `:${reference.tag}`;
  if (reference.digest !== undefined) out += `@${reference.digest}`;
  const params = new URLSearchParams();
  if (reference.ca !== undefined) params.set('ca', reference.ca);
  if (reference.plainHttp) params.set('plain-http', 'true');
  const query = params.toString();
  return query ? `${out}?${query}` : out;
}
