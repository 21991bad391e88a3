/** A counting semaphore with abortable waits. */
export class Semaphore {
  #free: number;
  readonly #waiters: Array<{ resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal }> = [];

  constructor(size: number) {
    this.#free = size;
  }

  /** Takes a slot; resolves to a release function that is safe to call more than once. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const waiter = {
          resolve: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
          reject,
          signal,
        };
        const onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#waiters.push(waiter);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next.resolve();
      else this.#free++;
    };
  }
}
