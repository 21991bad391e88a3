/**
 * A fixed set of equal slots in one SharedArrayBuffer, handed out and given back, so a
 * pipeline reuses the same memory for every chunk instead of allocating (and leaving garbage
 * in) each thread it passes through. Pages of a slot become resident only when first written.
 */
export interface SlotPool {
  /** Waits for a free slot; its view is `size` bytes long (throws the signal's reason on abort). */
  acquire(signal?: AbortSignal): Promise<Slot>;
  readonly size: number;
}

export interface Slot {
  readonly view: Uint8Array;
  release(): void;
}

/** Creates `count` slots of `size` bytes. */
export function createSlotPool(count: number, size: number): SlotPool {
  const memory = new SharedArrayBuffer(Math.max(1, count * size));
  const free: number[] = Array.from({ length: count }, (_, i) => i);
  const waiting: Array<(i: number) => void> = [];
  const give = (i: number) => {
    const w = waiting.shift();
    if (w) w(i);
    else free.push(i);
  };
  const slotOf = (i: number): Slot => {
    let released = false;
    return {
      view: new Uint8Array(memory, i * size, size),
      release: () => {
        if (released) return;
        released = true;
        give(i);
      },
    };
  };
  return {
    size,
    acquire(signal) {
      signal?.throwIfAborted();
      const i = free.pop();
      if (i !== undefined) return Promise.resolve(slotOf(i));
      return new Promise<Slot>((resolve, reject) => {
        const onAbort = () => {
          const at = waiting.indexOf(take);
          if (at >= 0) waiting.splice(at, 1);
          reject(signal?.reason);
        };
        const take = (idx: number) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(slotOf(idx));
        };
        waiting.push(take);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}
