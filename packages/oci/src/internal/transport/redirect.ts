// The redirect layer: follows 301/302/303/307/308 (at most 10), never from HTTPS to plain HTTP, and
// turns a 303 into a GET without a body. Credentials stay with the registry's origin because the
// auth layer below adds them per hop, for the registry's origin only.
import { InsecureRedirectError, RegistryError } from '../../errors.js';
import { discard, isReplayable, type Layer } from './types.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** Follows redirects unless the request says `followRedirects: false`. */
export function redirectLayer(): Layer {
  return (next) => async (request) => {
    let current = request;
    for (let redirects = 0; ; ) {
      const res = await next(current);
      const location = res.headers.location;
      if (
        current.followRedirects === false ||
        !REDIRECTS.has(res.statusCode) ||
        typeof location !== 'string'
      ) {
        return res;
      }
      const from = new URL(current.url);
      const to = new URL(location, current.url);
      if (from.protocol === 'https:' && to.protocol !== 'https:') {
        await discard(res);
        throw new InsecureRedirectError(`refused a redirect from HTTPS to ${to.protocol.replace(':', '')}`, {
          method: current.method,
          url: current.url,
          statusCode: res.statusCode,
        });
      }
      if (++redirects > MAX_REDIRECTS) {
        await discard(res);
        throw new RegistryError(`too many redirects (more than ${MAX_REDIRECTS})`, {
          method: current.method,
          url: current.url,
          statusCode: res.statusCode,
        });
      }
      if (res.statusCode === 303 && current.method !== 'HEAD') {
        const headers = { ...current.headers };
        for (const name of Object.keys(headers)) {
          if (/^content-/i.test(name)) delete headers[name];
        }
        current = { ...current, method: 'GET', body: undefined, headers };
      } else if (!isReplayable(current.body)) {
        // Cannot resend a consumed stream to the new location.
        return res;
      }
      await discard(res);
      current = { ...current, url: to.toString() };
    }
  };
}
