import { describe, expect, it } from 'vitest';
import { createLocalLock } from './local-lock.js';
import type { Lease } from './types.js';

describe('createLocalLock (in-process)', () => {
  it('serialises concurrent holders of one key, fences grow, independent keys do not block', async () => {
    const lock = createLocalLock({ ttlMs: 1_000, backoff: { initialMs: 5, maxMs: 20 } });
    let inside = 0;
    let maxInside = 0;
    const fences: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const outcome = await lock.acquireOrWait('k', { isDone: () => false });
        if (outcome.kind !== 'acquired') throw new Error(outcome.kind);
        inside++;
        maxInside = Math.max(maxInside, inside);
        fences.push(outcome.lease.fence);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
        await outcome.lease.release('failed');
      }),
    );
    expect(maxInside).toBe(1);
    expect(fences).toEqual([...fences].sort((a, b) => a - b));
    expect(new Set(fences).size).toBe(10);
    const a = await lock.acquireOrWait('a');
    const b = await lock.acquireOrWait('b');
    expect([a.kind, b.kind]).toEqual(['acquired', 'acquired']);
    await lock.close();
  });

  it('built notice → peer-finished; lease stays valid while held; close loses it', async () => {
    const lock = createLocalLock({ ttlMs: 400, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const held = await lock.acquireOrWait('k');
    if (held.kind !== 'acquired') throw new Error(held.kind);
    const waiter = lock.acquireOrWait('k');
    await new Promise((r) => setTimeout(r, 1_000)); // 2.5 TTLs: renewals keep it
    expect(held.lease.isValid()).toBe(true);
    await held.lease.release('built');
    expect(await waiter).toEqual({ kind: 'peer-finished' });
    const again = await lock.acquireOrWait('k');
    await lock.close();
    expect((again as { lease: Lease }).lease.signal.aborted).toBe(true);
  });
});
