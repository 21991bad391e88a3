/**
 * The key's input manifest as an entry's config records it (`inputs`, docs/format.md §3.1), and
 * its strict reading: a recorded manifest comes from the store, so it is untrusted like every
 * other byte there.
 */
import type { KeyInputs, SourceDigest } from '../key/checksum.js';

/** The input manifest recorded in an entry's config: the task name plus every hashed input. */
export interface RecordedInputs extends KeyInputs {
  /** The task name the key was made for. */
  task: string;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}

/**
 * The recorded input manifest of a config, or `undefined` when it is absent or malformed (an
 * older writer, a caller's own key, or a damaged document: "not recorded").
 */
export function parseRecordedInputs(v: unknown): RecordedInputs | undefined {
  if (!isObject(v) || typeof v.task !== 'string') return undefined;
  const { sources, env, tools } = v;
  if (!Array.isArray(sources) || !Array.isArray(env) || !Array.isArray(tools)) return undefined;
  const commands = strings(v.commands);
  const extra = strings(v.extra);
  if (!commands || !extra) return undefined;
  if (v.platform !== null && typeof v.platform !== 'string') return undefined;
  const out: RecordedInputs = {
    task: v.task,
    sources: [],
    env: [],
    tools: [],
    commands,
    platform: v.platform,
    extra,
  };
  for (const s of sources) {
    if (!isObject(s) || typeof s.path !== 'string' || typeof s.digest !== 'string') return undefined;
    if (!DIGEST_RE.test(s.digest)) return undefined;
    const kind = s.kind === 'x' || s.kind === 'l' ? s.kind : '-';
    out.sources.push({ path: s.path, digest: s.digest, kind } satisfies SourceDigest);
  }
  for (const e of env) {
    if (!isObject(e) || typeof e.name !== 'string') return undefined;
    if (e.digest !== null && (typeof e.digest !== 'string' || !DIGEST_RE.test(e.digest))) return undefined;
    out.env.push({ name: e.name, digest: e.digest });
  }
  for (const t of tools) {
    if (!isObject(t) || typeof t.name !== 'string' || typeof t.version !== 'string') return undefined;
    out.tools.push({ name: t.name, version: t.version });
  }
  return out;
}
