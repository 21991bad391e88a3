/** The typed difference between two input manifests, and its short human rendering. */
import type { KeyInputs } from '../key/checksum.js';

/** One input that differs from the previous entry's. */
export type InputChange =
  | { input: 'source'; change: 'added' | 'removed' | 'changed'; path: string }
  | { input: 'env'; change: 'added' | 'removed' | 'changed'; name: string }
  | { input: 'tool'; change: 'added' | 'removed' | 'changed'; name: string; from?: string; to?: string }
  | { input: 'commands'; change: 'changed' }
  | { input: 'platform'; change: 'changed'; from: string | null; to: string | null }
  | { input: 'extra'; change: 'changed' };

/** Why the previous entry cannot be compared, or that it was. */
export type PreviousEntry =
  | { status: 'found'; key: string; created: string }
  | { status: 'none' }
  | { status: 'expired'; key: string }
  | { status: 'not-recorded'; key?: string };

/** What `cache.explain()` and `result.explanation` report. */
export interface Explanation {
  task: string;
  /** The key of the current inputs. */
  key: string;
  /** The entry the inputs were compared with (the task's newest previous entry). */
  previous: PreviousEntry;
  /** Every input that differs, files first, in a stable order; empty when nothing was compared. */
  changes: InputChange[];
}

function byKey<T>(items: readonly T[], key: (t: T) => string): Map<string, T> {
  return new Map(items.map((t) => [key(t), t]));
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The changes from `before` to `after`. */
export function diffInputs(before: KeyInputs, after: KeyInputs): InputChange[] {
  const out: InputChange[] = [];
  const pf = byKey(before.sources, (s) => s.path);
  const nf = byKey(after.sources, (s) => s.path);
  for (const [path, f] of nf) {
    const p = pf.get(path);
    if (p === undefined) out.push({ input: 'source', change: 'added', path });
    else if (p.digest !== f.digest || p.kind !== f.kind)
      out.push({ input: 'source', change: 'changed', path });
  }
  for (const path of pf.keys()) if (!nf.has(path)) out.push({ input: 'source', change: 'removed', path });
  const pe = byKey(before.env, (e) => e.name);
  const ne = byKey(after.env, (e) => e.name);
  for (const [name, e] of ne) {
    const p = pe.get(name);
    if (p === undefined) out.push({ input: 'env', change: 'added', name });
    else if (p.digest !== e.digest) out.push({ input: 'env', change: 'changed', name });
  }
  for (const name of pe.keys()) if (!ne.has(name)) out.push({ input: 'env', change: 'removed', name });
  const pt = byKey(before.tools, (t) => t.name);
  const nt = byKey(after.tools, (t) => t.name);
  for (const [name, t] of nt) {
    const p = pt.get(name);
    if (p === undefined) out.push({ input: 'tool', change: 'added', name, to: t.version });
    else if (p.version !== t.version)
      out.push({ input: 'tool', change: 'changed', name, from: p.version, to: t.version });
  }
  for (const [name, t] of pt)
    if (!nt.has(name)) out.push({ input: 'tool', change: 'removed', name, from: t.version });
  if (!sameList(before.commands, after.commands)) out.push({ input: 'commands', change: 'changed' });
  if (before.platform !== after.platform)
    out.push({ input: 'platform', change: 'changed', from: before.platform, to: after.platform });
  if (!sameList(before.extra, after.extra)) out.push({ input: 'extra', change: 'changed' });
  return out;
}

/** A few words for one change: `src/app.ts changed`, `NODE_ENV changed`, `tool node 20.1.0 → 22.0.0`. */
export function describeChange(c: InputChange): string {
  switch (c.input) {
    case 'source':
      return `${c.path} ${c.change}`;
    case 'env':
      return `${c.name} ${c.change}`;
    case 'tool':
      return c.change === 'changed' ? `tool ${c.name} ${c.from} → ${c.to}` : `tool ${c.name} ${c.change}`;
    case 'commands':
      return 'commands changed';
    case 'platform':
      return `platform ${c.from ?? 'none'} → ${c.to ?? 'none'}`;
    case 'extra':
      return 'extra inputs changed';
  }
}

/**
 * The short human explanation: `src/app.ts changed, NODE_ENV changed (2 more)` — at most `max`
 * changes named — or why nothing could be compared.
 */
export function describeExplanation(e: Explanation, max = 2): string {
  switch (e.previous.status) {
    case 'none':
      return 'no previous entry of this task';
    case 'expired':
      return 'the previous entry expired';
    case 'not-recorded':
      return 'the previous entry does not record its inputs';
    case 'found': {
      if (e.changes.length === 0) return 'no input changed since the previous entry';
      const named = e.changes.slice(0, max).map(describeChange).join(', ');
      const more = e.changes.length - max;
      return more > 0 ? `${named} (${more} more)` : named;
    }
  }
}
