// Parsers for the HTTP headers the registry client reads: WWW-Authenticate (RFC 9110 §11.6.1),
// Link (RFC 8288), Retry-After (RFC 9110 §10.2.3) and Warning (RFC 7234 §5.5).

/** One authentication challenge. `params` keys are lowercase. */
export interface AuthChallenge {
  /** Lowercase scheme, e.g. `bearer`, `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header value (or several joined by `,`) into challenges.
 * Tolerates quoted strings with escapes and commas, unquoted values, extra whitespace,
 * and `token68` forms. Never throws.
 */
export function parseWwwAuthenticate(value: string | string[] | undefined): AuthChallenge[] {
  if (value === undefined) return [];
  const input = Array.isArray(value) ? value.join(', ') : value;
  const challenges: AuthChallenge[] = [];
  let i = 0;
  const n = input.length;
  const skipWs = () => {
    while (i < n && (input[i] === ' ' || input[i] === '\t')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(input[i]!)) i++;
    return input.slice(start, i);
  };
  const readQuoted = () => {
    // input[i] === '"'
    i++;
    let out = '';
    while (i < n && input[i] !== '"') {
      if (input[i] === '\\' && i + 1 < n) i++;
      out += input[i];
      i++;
    }
    i++; // closing quote (or end)
    return out;
  };
  let current: AuthChallenge | undefined;
  while (i < n) {
    skipWs();
    if (input[i] === ',') {
      i++;
      continue;
    }
    const start = i;
    const token = readToken();
    if (!token) {
      i++; // garbage character; skip it
      continue;
    }
    skipWs();
    if (input[i] === '=' && current !== undefined && input[i + 1] !== '=') {
      // auth-param of the current challenge
      i++;
      skipWs();
      const paramValue = input[i] === '"' ? readQuoted() : readUntilComma();
      current.params[token.toLowerCase()] = paramValue;
      continue;
    }
    if (input[i] === '=' && current === undefined) {
      // A param with no scheme before it: ignore up to the next comma.
      i = start;
      readUntilComma();
      continue;
    }
    // A new challenge scheme.
    current = { scheme: token.toLowerCase(), params: {} };
    challenges.push(current);
    skipWs();
    // token68?
    const t68 = /^[A-Za-z0-9._~+/-]+=*(?=\s*(,|$))/.exec(input.slice(i));
    if (t68 && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+\s*=[^=]/.test(input.slice(i))) {
      current.params.token68 = t68[0];
      i += t68[0].length;
    }
  }
  return challenges;

  function readUntilComma(): string {
    const start = i;
    while (i < n && input[i] !== ',') i++;
    return input.slice(start, i).trim();
  }
}

/**
 * The `rel="next"` target of a `Link` header, resolved against `base`; `undefined` if none.
 */
export function parseLinkNext(value: string | string[] | undefined, base: string): string | undefined {
  if (value === undefined) return undefined;
  const input = Array.isArray(value) ? value.join(', ') : value;
  const re = /<([^>]*)>((?:\s*;\s*[^;,]+(?:=(?:"[^"]*"|[^;,]*))?)*)/g;
  for (let m = re.exec(input); m !== null; m = re.exec(input)) {
    const target = m[1]!;
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) {
      try {
        return new URL(target, base).toString();
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * Milliseconds to wait from a `Retry-After` value (delta-seconds or HTTP-date);
 * `undefined` when absent or unparseable. Dates in the past give 0.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[A-Za-z]/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * The texts of `Warning` headers (`299 - "text"`), as distribution-spec v1.1.1 asks clients to
 * surface them.
 */
export function parseWarnings(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  const out: string[] = [];
  for (const v of values) {
    const re = /(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"/g;
    let found = false;
    for (let m = re.exec(v); m !== null; m = re.exec(v)) {
      found = true;
      out.push(m[3]!.replace(/\\(.)/g, '$1'));
    }
    if (!found && v.trim()) out.push(v.trim());
  }
  return out;
}
