// Listing a registry repository's tags: every page (`Link: <…>; rel="next"`), each tag once, in
// lexical order (the store contract's order, which distribution itself returns).
import { RegistryError } from '../errors.js';
import { parseLinkNext } from '../internal/headers.js';
import { discard } from '../internal/transport/index.js';
import type { RequestOptions } from '../types.js';
import { failure, type RepositoryContext, scopes } from './context.js';

/** Every tag of the repository once, sorted; a missing repository has none. */
export async function* listTags(ctx: RepositoryContext, options?: RequestOptions): AsyncGenerator<string> {
  const seen = new Set<string>();
  const visited = new Set<string>();
  const { pull } = scopes(ctx);
  let url: string | undefined = `${ctx.origin}/v2/${ctx.name}/tags/list?n=${ctx.tagPageSize}`;
  while (url !== undefined) {
    if (visited.has(url)) {
      throw new RegistryError('tag list pagination loops back to a page already read', {
        method: 'GET',
        url,
      });
    }
    visited.add(url);
    const res = await ctx.transport.send({ method: 'GET', url, scopes: pull, signal: options?.signal });
    if (res.statusCode === 404) {
      await discard(res);
      break;
    }
    if (res.statusCode !== 200) {
      throw await failure(ctx, res, 'GET', { action: 'list tags', notFound: 'name' });
    }
    let json: { tags?: unknown };
    try {
      json = (await res.body.json()) as { tags?: unknown };
    } catch (cause) {
      throw new RegistryError('tag list is not valid JSON', { method: 'GET', url, cause });
    }
    for (const t of Array.isArray(json.tags) ? json.tags : []) {
      if (typeof t === 'string') seen.add(t);
    }
    url = parseLinkNext(res.headers.link, url);
  }
  // NOTE: the pages are read to the end before the first tag is handed on: registries other than
  // distribution do not promise lexical order across pages, and the contract does.
  yield* [...seen].sort();
}
