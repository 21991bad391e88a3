// Listing a registry repository's tags: every page (`Link: <…>; rel="next"`), each tag once, in
// lexical order (the store contract's order, which distribution itself returns).
import { OciError, RegistryError } from '../errors.js';
import { parseLinkNext } from '../internal/headers.js';
import { discard, readCapped, wrapNetworkError } from '../internal/transport/index.js';
import type { RequestOptions } from '../types.js';
import { failure, type RepositoryContext, scopes } from './context.js';

/** Every tag of the repository once, sorted; a missing repository has none. */
export async function* listTags(ctx: RepositoryContext, options?: RequestOptions): AsyncGenerator<string> {
  const seen = new Set<string>();
  const visited = new Set<string>();
  const { pull } = scopes(ctx);
  let url: string | undefined = `${ctx.origin}/v2/${ctx.name}/tags/list?n=${ctx.tagPageSize}`;
  // NOTE: a page holds at most `tagPageSize` tags of at most 128 characters, quoted: the cap of
  // one page's body follows, with room for JSON around them.
  const maxPageBytes = 64 * 1024 + ctx.tagPageSize * 160;
  while (url !== undefined) {
    if (visited.size >= ctx.maxTagPages) {
      throw new RegistryError(
        `tag list has more than maxTagPages (${ctx.maxTagPages}) pages; stopped reading`,
        { method: 'GET', url },
      );
    }
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
    let page: Buffer | undefined;
    try {
      page = await readCapped(res, maxPageBytes);
    } catch (cause) {
      throw cause instanceof OciError ? cause : wrapNetworkError(cause, 'GET', url);
    }
    if (page === undefined) {
      throw new RegistryError(`tag list page is larger than ${maxPageBytes} bytes`, { method: 'GET', url });
    }
    try {
      json = JSON.parse(page.toString('utf8')) as { tags?: unknown };
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
