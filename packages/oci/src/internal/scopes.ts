// Token scopes (`repository:NAME:pull,push`) as the distribution token spec writes them.

/** Merges scopes naming the same resource (`repository:a:pull` + `repository:a:push` → `repository:a:pull,push`). */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const opaque = new Set<string>();
  for (const scope of scopes) {
    for (const s of scope.split(' ')) {
      if (!s) continue;
      const last = s.lastIndexOf(':');
      const first = s.indexOf(':');
      if (first < 0 || last === first) {
        opaque.add(s);
        continue;
      }
      const resource = s.slice(0, last);
      const actions = s
        .slice(last + 1)
        .split(',')
        .filter(Boolean);
      let set = byResource.get(resource);
      if (!set) {
        set = new Set();
        byResource.set(resource, set);
      }
      for (const a of actions) set.add(a);
    }
  }
  const out: string[] = [...opaque];
  for (const [resource, actions] of byResource) {
    const list = [...actions].sort();
    // `*` subsumes every action.
    out.push(`${resource}:${list.includes('*') ? '*' : list.join(',')}`);
  }
  return out.sort();
}

/** A stable cache key for a scope set. */
export function scopeKey(scopes: Iterable<string>): string {
  return mergeScopes(scopes).join(' ');
}
