// The client's own keep-alive Agent, created on the first request: importing @task-cache/oci (and
// @task-cache/core above it) must not load undici, because most runs of a task runner never talk
// to a registry (the embedded default store is a local image layout). Issue 14.
import type { Agent, Dispatcher } from 'undici';

/** What the transport needs of a dispatcher: undici's promise `request()`. */
export interface RequestDispatcher {
  request(options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
}

/** A dispatcher whose undici `Agent` is imported and created on first use; `close()` closes it. */
export interface LazyAgent extends RequestDispatcher {
  close(): Promise<void>;
}

/** A lazily created `new Agent(options)` (one per client: its connections are kept alive). */
export function lazyAgent(options: Agent.Options): LazyAgent {
  let agent: Promise<Agent> | undefined;
  let closed = false;
  const get = (): Promise<Agent> => {
    agent ??= import('undici').then(({ Agent }) => new Agent(options));
    return agent;
  };
  return {
    async request(o) {
      // NOTE: as a closed undici Agent would, without importing undici just to say so.
      if (closed) throw Object.assign(new Error('The client is destroyed'), { code: 'UND_ERR_DESTROYED' });
      return (await get()).request(o);
    },
    async close() {
      closed = true;
      // Nothing was ever sent: nothing to close (and no reason to load undici now).
      if (agent) await (await agent).close();
    },
  };
}
