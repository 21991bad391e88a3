/**
 * No secret in any output (issue 16 §5), property-based: URLs of every scheme the cache takes,
 * with a random secret in every position that can hold one (the password, the user name, both),
 * raw or percent-encoded, before hosts of every shape (name, IPv4, IPv6, an unclosed IPv6 `[`),
 * valid or broken after the host. Whatever `createCache()`, the URL parsers and the redaction
 * helpers make of them, no error message, `toString()`, stack, JSON form, cause, or redacted
 * text contains the secret, raw, percent-encoded or base64.
 *
 * 1,000 cases per scheme (the issue's acceptance).
 */
import { redactUrl, redactUrls, scrubSecrets } from '@task-cache/oci';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCache } from '../index.js';
import { parseLockOption } from './lock-url.js';
import { parseStoreUrl } from './urls.js';

const RUNS = 1_000;
// NOTE: a fixed seed keeps CI reproducible; TASK_CACHE_PROPERTY_SEED=random explores (it found a
// password holding `://`, which began a new URL in free text, and a lock URL whose password held
// `?`, echoed as an unknown query parameter — both are regression cases in redact.test.ts and
// lock's url.test.ts).
const SEED =
  process.env.TASK_CACHE_PROPERTY_SEED === 'random'
    ? Date.now()
    : Number(process.env.TASK_CACHE_PROPERTY_SEED ?? 20261202);
const SCHEMES = [
  'oci',
  'redis',
  'rediss',
  'redis+sentinel',
  'rediss+sentinel',
  'redis+cluster',
  'rediss+cluster',
] as const;
type Scheme = (typeof SCHEMES)[number];

// NOTE: at least 8 characters with a fixed marker, so that a form of the secret can only be
// found where the secret was put (a 1-character secret would "leak" into every message).
const secretChars = fc.constantFrom(..."abcXYZ019 /#?@%:[]!$&'()*+,;=~._-".split(''));
const secret = fc.array(secretChars, { minLength: 4, maxLength: 24 }).map((a) => `Zq${a.join('')}Vw`);
/** The fixed ends of every secret: found in an output, part of the secret leaked. */
const MARKERS = ['Zq', 'Vw'];
const host = fc.constantFrom(
  'reg.example:5000',
  '127.0.0.1:6379',
  '[::1]:6379',
  '[::1:6379',
  '[fe80::1',
  'h1:26379,h2:26379',
  '',
);
const tail = fc.constantFrom('/team/repo:tag', '/0', '/lock:k', '/m/lock:k', '', '/a/b?x=1#f', ':notaport/x');
/** Where the secret goes: `user:SECRET@`, `SECRET:pw@`, `SECRET@`, `SECRET:SECRET@`. */
const position = fc.constantFrom('password', 'user', 'bare', 'both');

function forms(s: string): string[] {
  const out = new Set<string>();
  for (const v of [s, decodeSafe(s)]) {
    const b64 = Buffer.from(v).toString('base64');
    out.add(v);
    out.add(encodeURIComponent(v));
    out.add(encodeURI(v));
    out.add(b64);
    out.add(b64.replace(/=+$/, ''));
    out.add(Buffer.from(v).toString('base64url'));
  }
  return [...out].filter((f) => f.length >= 6);
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Every text an error can show: message, toString, stack, JSON, and the same for each cause. */
function texts(error: unknown): string[] {
  const out: string[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    out.push(String(e), (e as Error).stack ?? '', JSON.stringify(e) ?? '');
    e = (e as Error).cause;
  }
  return out;
}

function urlOf(scheme: Scheme, pos: string, s: string, h: string, t: string): string {
  const userinfo =
    pos === 'password' ? `robot$ci:${s}` : pos === 'user' ? `${s}:pw` : pos === 'bare' ? s : `${s}:${s}`;
  return `${scheme}://${userinfo}@${h}${t}`;
}

function attempt(fn: () => unknown): unknown {
  try {
    const r = fn();
    // A cache object: nothing opened (createCache connects lazily); close it anyway.
    (r as { close?: () => unknown } | undefined)?.close?.();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('no secret in any output (property-based)', () => {
  it.each(SCHEMES)('%s:// — 1,000 URLs with a secret in every position', (scheme) => {
    let errors = 0;
    fc.assert(
      fc.property(secret, fc.boolean(), position, host, tail, (raw, encode, pos, h, t) => {
        const s = encode ? encodeURIComponent(raw) : raw;
        const url = urlOf(scheme, pos, s, h, t);
        const outputs: string[] = [
          redactUrl(url),
          redactUrls(`failed to reach ${url} (ECONNREFUSED); retry ${url}`),
          scrubSecrets(
            `server said: ${raw} ${encodeURIComponent(raw)} ${Buffer.from(`robot$ci:${raw}`).toString('base64')} Basic ${Buffer.from(`robot$ci:${raw}`).toString('base64')}`,
            [raw, { username: 'robot$ci', password: raw }],
          ),
        ];
        const failures = [
          scheme === 'oci' ? attempt(() => createCache({ store: url, env: {} })) : undefined,
          scheme === 'oci' ? attempt(() => parseStoreUrl(url)) : undefined,
          scheme !== 'oci'
            ? attempt(() => createCache({ lock: url, store: 'memory://p', env: {} }))
            : undefined,
          scheme !== 'oci' ? attempt(() => parseLockOption(url, 'createCache')) : undefined,
          scheme === 'redis' || scheme === 'rediss'
            ? attempt(() => createCache({ store: url, env: {} }))
            : undefined,
        ].filter((e) => e !== undefined);
        errors += failures.length;
        for (const f of failures) outputs.push(...texts(f));
        for (const text of outputs) {
          // No part of it either: the secret's first and last characters are fixed markers.
          const marker = MARKERS.find((m) => text.includes(m));
          if (marker !== undefined) {
            throw new Error(
              `part of the secret (${marker}) of ${JSON.stringify(raw)} leaked from ${JSON.stringify(url)}: ${text}`,
            );
          }
          for (const form of forms(raw)) {
            if (text.includes(form)) {
              throw new Error(
                `secret form ${JSON.stringify(form)} of ${JSON.stringify(raw)} leaked from ${JSON.stringify(url)}: ${text}`,
              );
            }
          }
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // The property saw errors (most generated URLs are malformed): it can fail.
    expect(errors).toBeGreaterThan(0);
  });
});
