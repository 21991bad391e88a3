// NOTE: upload `Location`s carry signed state (distribution's `_state`), S3 presigned URLs carry
// signatures and session tokens; none of it may reach an error message or an event.
const SENSITIVE_QUERY = /sig|token|credential|secret|password|passwd|auth|key|state|session/i;

/**
 * Removes user-info and credential-like query values (`_state`, signatures, tokens, keys) from a
 * URL, for messages, logs and events; relative URLs get their query redacted too.
 */
export function redactUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    // Relative URLs (upload Locations): redact the query by hand.
    const q = input.indexOf('?');
    if (q < 0) return input;
    return input.slice(0, q + 1) + redactQuery(input.slice(q + 1));
  }
  if (url.username || url.password) {
    url.username = url.username ? 'REDACTED' : '';
    url.password = url.password ? 'REDACTED' : '';
  }
  if (url.search) {
    url.search = redactQuery(url.search.slice(1));
  }
  return url.toString();
}

function redactQuery(query: string): string {
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      if (eq >= 0 && SENSITIVE_QUERY.test(decodeURIComponentSafe(key))) return `${key}=REDACTED`;
      return pair;
    })
    .join('&');
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
