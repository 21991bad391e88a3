/**
 * The one redaction of the project: every message, log line, event and error field that shows a
 * URL goes through {@link redactUrl} (one URL) or {@link redactUrls} (free text), and text a server
 * sent goes through {@link scrubSecrets} before it is shown. Core and the lock package import these.
 *
 * Output format, the same for every scheme (`oci://`, `https://`, `redis://`, `rediss://`,
 * `redis+sentinel://…`): the whole user-info is replaced, `***:***@` when it has a `:` (a password,
 * even with an empty or no user name), `***@` when it has none (a bare token or user name: it may
 * be a secret too, e.g. `https://TOKEN@host`). Credential-like query values (`_state`, signatures,
 * tokens, keys, passwords, sessions) become `***`. Nothing else changes: scheme, hosts, ports, path.
 *
 * NOTE: both work on the raw string and never parse it as a URL first: `new URL()` throws on, or
 * silently re-encodes, exactly the inputs that need redacting most (a password holding `/ # ? @ %`,
 * an unclosed IPv6 `[`, a `redis+sentinel://` host list). The user-info is taken to end at the LAST
 * `@` that does not start a digest, so a raw `@`, `/`, `?`, `#` or `[` in a password stays inside it.
 * When in doubt more is hidden, never less (an `@` later in a path can hide the host too).
 */
import type { Credentials } from './credentials.js';

const SCHEME = /[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** What follows the `@` of a digest reference (`repo@sha256:…`): not the end of a user-info. */
const DIGEST_AFTER_AT = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}/;
// NOTE: upload `Location`s carry signed state (distribution's `_state`), S3 presigned URLs carry
// signatures and session tokens; none of it may reach an error message or an event.
const SENSITIVE_QUERY = /sig|token|credential|secret|password|passwd|pwd|auth|key|state|session/i;
const MASK = '***';

/**
 * Redacts ONE URL (a store or lock URL, a request URL, an upload `Location`, relative or not):
 * user-info becomes `***:***@` (or `***@`), credential-like query values `***`. Everything after
 * `scheme://` up to the host is user-info, whatever characters it holds (spaces included).
 *
 * @example
 * redactUrl('redis://:p@ss/w#rd@[::1]:6379/0') // 'redis://***:***@[::1]:6379/0'
 * redactUrl('/v2/a/blobs/uploads/1?_state=abc') // '/v2/a/blobs/uploads/1?_state=***'
 */
export function redactUrl(url: string): string {
  if (typeof url !== 'string') return url;
  const match = SCHEME.exec(url);
  if (match === null) return redactQueryIn(url, 0, url.length);
  const start = match.index + match[0].length;
  return url.slice(0, start) + redactAuthorityAndQuery(url.slice(start), false);
}

/**
 * Redacts every URL in free text (an error message from a library, a server's answer): each
 * `scheme://` starts a URL that runs up to the next one (a `scheme://` with no white space since
 * the previous one began is part of that URL: a password or a query holding `://`); within it the
 * same rules as {@link redactUrl} apply, except that a query ends at white space.
 */
export function redactUrls(text: string): string {
  if (typeof text !== 'string') return text;
  const starts: number[] = [];
  // NOTE: a fresh global regex per call: a shared one carries `lastIndex` from call to call.
  for (const m of text.matchAll(new RegExp(SCHEME.source, 'g'))) {
    const previous = starts.at(-1);
    // A `scheme://` with no white space since the previous URL began is inside that URL: in its
    // user-info (a password holding `://`) or its query (`?next=https://…`). It starts no new
    // region, so the user-info still ends at that URL's last `@`.
    if (previous !== undefined && !/\s/.test(text.slice(previous, m.index))) continue;
    starts.push(m.index + m[0].length);
  }
  if (starts.length === 0) return text;
  let out = text.slice(0, starts[0]);
  starts.forEach((start, i) => {
    const next = starts[i + 1];
    // The next URL's `scheme://` belongs to the next region; find where its scheme begins.
    const end = next === undefined ? text.length : schemeStart(text, next);
    out += redactAuthorityAndQuery(text.slice(start, end), true) + text.slice(end, next ?? text.length);
  });
  return out;
}

function schemeStart(text: string, afterSlashes: number): number {
  let i = afterSlashes - 3; // at ':'
  while (i > 0 && /[A-Za-z0-9+.-]/.test(text[i - 1]!)) i--;
  return i;
}

/** `rest` is what follows `scheme://`. */
function redactAuthorityAndQuery(rest: string, textMode: boolean): string {
  // In free text a bare `scheme://` followed by white space names a scheme ("redis:// and
  // rediss:// locks (@task-cache/lock/redis) need…"); it has no authority, so nothing to hide.
  if (textMode && /^(?:\s|$)/.test(rest)) return rest;
  // NOTE: the user-info ends at the LAST `@` of the URL that does not start a digest
  // (`repo@sha256:…`): a secret may hold `@`, `[`, `:` and anything
  // else, so no guess about which `@` a plausible host follows is safe (property test: a password
  // `Zqa&@[Vw` made `[Vw` look like an unclosed IPv6 host). An `@` later in a path hides the host
  // too: more is hidden, never less.
  let at = -1;
  for (let i = rest.lastIndexOf('@'); i >= 0; i = i === 0 ? -1 : rest.lastIndexOf('@', i - 1)) {
    const after = rest.slice(i + 1);
    if (!DIGEST_AFTER_AT.test(after)) {
      at = i;
      break;
    }
  }
  let head = '';
  let tail = rest;
  if (at >= 0) {
    head = `${rest.slice(0, at).includes(':') ? `${MASK}:${MASK}` : MASK}@`;
    tail = rest.slice(at + 1);
  }
  const end = textMode ? tail.search(/\s/) : -1;
  const stop = end < 0 ? tail.length : end;
  return head + redactQueryIn(tail, 0, stop);
}

/** Masks credential-like query values in `s[from, to)` (the query starts at the first `?`). */
function redactQueryIn(s: string, from: number, to: number): string {
  const q = s.indexOf('?', from);
  if (q < 0 || q >= to) return s;
  const hash = s.indexOf('#', q);
  const end = hash >= 0 && hash < to ? hash : to;
  const query = s
    .slice(q + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const key = pair.slice(0, eq);
      return SENSITIVE_QUERY.test(decodeSafe(key)) ? `${key}=${MASK}` : pair;
    })
    .join('&');
  return `${s.slice(0, q + 1)}${query}${s.slice(end)}`;
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A secret to remove from text: a string (password, token), or credentials (user name kept). */
export type Secret = string | Pick<Credentials, 'username' | 'password'> | undefined | null;

/**
 * Removes known secrets from text a server sent (an error body, a `Warning` header) before it is
 * shown: each secret in its raw form, percent-encoded (either hex case, `+` or `%20` for spaces),
 * JSON-escaped, and base64/base64url (padded or not). For {@link Credentials} the password is
 * removed, and `user:password` in all those forms too (as in a `Basic` header, whose base64 does
 * not contain the base64 of the password alone). Each occurrence becomes `***`; URLs are then
 * redacted with {@link redactUrls}. Empty secrets are ignored.
 */
export function scrubSecrets(text: string, secrets: Iterable<Secret>): string {
  if (typeof text !== 'string' || text === '') return text;
  const values = new Set<string>();
  for (const secret of secrets) {
    if (secret === undefined || secret === null) continue;
    if (typeof secret === 'string') {
      if (secret) values.add(secret);
    } else if (secret.password) {
      values.add(secret.password);
      values.add(`${secret.username}:${secret.password}`);
    }
  }
  const patterns = new Set<string>();
  for (const value of values) {
    for (const form of encodings(value)) if (form) patterns.add(form);
  }
  let out = text;
  if (patterns.size > 0) {
    // Longest first, so a form that contains another is removed whole.
    const alternatives = [...patterns].sort((a, b) => b.length - a.length).map(patternOf);
    out = out.replace(new RegExp(alternatives.join('|'), 'g'), MASK);
  }
  return redactUrls(out);
}

function encodings(value: string): string[] {
  const percent = encodeURIComponent(value);
  const base64 = Buffer.from(value, 'utf8').toString('base64');
  const base64url = Buffer.from(value, 'utf8').toString('base64url');
  return [
    value,
    percent,
    percent.replace(/%20/g, '+'),
    encodeURI(value),
    JSON.stringify(value).slice(1, -1),
    base64,
    base64.replace(/=+$/, ''),
    base64url,
  ];
}

/** A regex source matching `form`, with percent-escapes in either hex case. */
function patternOf(form: string): string {
  return form
    .split(/(%[0-9A-Fa-f]{2})/)
    .map((part) =>
      /^%[0-9A-Fa-f]{2}$/.test(part)
        ? `%[${part[1]!.toUpperCase()}${part[1]!.toLowerCase()}][${part[2]!.toUpperCase()}${part[2]!.toLowerCase()}]`
        : part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'),
    )
    .join('');
}
