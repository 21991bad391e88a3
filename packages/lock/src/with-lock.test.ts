import { describe, expect, it } from 'vitest';
import { LockUnavailableError } from './errors.js';
import { createLocalLock } from './local-lock.js';
import type { Lease, Lock } from './types.js';
import { withLock } from './with-lock.js';

describe('withLock', () => {
  it('runs fn with the lease and releases built', async () => {
    const lock = createLocalLock();
    let seen: Lease | undefined;
    expect(
      await withLock(lock, 'k', async (lease) => {
        seen = lease;
        return 42;
      }),
    ).toEqual({
      kind: 'acquired',
      value: 42,
    });
    expect(seen?.isValid()).toBe(false); // released
    expect((await lock.acquireOrWait('k')).kind).toBe('acquired'); // free again
    await lock.close();
  });

  it('releases failed and rethrows when fn throws; waiters then contend', async () => {
    const lock = createLocalLock({ backoff: { initialMs: 60_000, maxMs: 60_000 } });
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const running = withLock(lock, 'k', async () => {
      await gate;
      throw new Error('build broke');
    });
    await new Promise((r) => setTimeout(r, 10));
    const waiter = lock.acquireOrWait('k', { isDone: () => false });
    open();
    await expect(running).rejects.toThrow('build broke');
    expect((await waiter).kind).toBe('acquired');
    await lock.close();
  });

  it('does not run fn when a peer finished; runs it without a lease when unavailable', async () => {
    const lock = createLocalLock();
    let ran = false;
    expect(
      await withLock(
        lock,
        'k',
        async () => {
          ran = true;
        },
        { isDone: () => true },
      ),
    ).toEqual({
      kind: 'peer-finished',
    });
    expect(ran).toBe(false);
    const down: Lock = {
      key: undefined,
      acquireOrWait: async () => ({
        kind: 'unavailable',
        error: new LockUnavailableError('connection', 'down'),
      }),
      close: async () => {},
    };
    expect(await withLock(down, 'k', async (lease) => lease)).toEqual({
      kind: 'unavailable',
      value: undefined,
    });
    await lock.close();
  });
});
