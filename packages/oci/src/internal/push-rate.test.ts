import { describe, expect, it } from 'vitest';
import { createPushRateLimiter } from './push-rate.js';

describe('createPushRateLimiter', () => {
  it('admits `limit` pushes per window at once, the next only when the oldest leaves the window', async () => {
    let clock = 0;
    const limiter = createPushRateLimiter(2, 100, () => clock);
    await limiter.take();
    await limiter.take();
    let third = false;
    const pending = limiter.take().then(() => {
      third = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(third).toBe(false);
    // The window slides: the limiter re-reads the clock after its sleep.
    clock = 100;
    await pending;
    expect(third).toBe(true);
  });

  it('an aborted waiter rejects at once and gives its place up', async () => {
    let clock = 0;
    const limiter = createPushRateLimiter(1, 100, () => clock);
    await limiter.take();
    const controller = new AbortController();
    const aborted = limiter.take(controller.signal);
    const next = limiter.take();
    controller.abort(new Error('gone'));
    await expect(aborted).rejects.toThrow('gone');
    clock = 100;
    await next;
  });
});
