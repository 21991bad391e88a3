/**
 * Runs `fn` over `source` with at most `concurrency` calls in flight and yields the results in
 * source order. Memory is bounded by `concurrency` pending items. When the consumer stops early
 * or a call fails, pending calls are left to settle (their rejections are observed) and `signal`
 * consumers should abort them.
 */
export async function* mapOrdered<T, R>(
  source: AsyncIterable<T> | Iterable<T>,
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
  onFail?: (err: unknown) => void,
): AsyncGenerator<R> {
  const pending: Promise<R>[] = [];
  let index = 0;
  try {
    for await (const item of source) {
      const p = fn(item, index++);
      p.catch(() => {});
      pending.push(p);
      if (pending.length >= concurrency) yield await (pending.shift() as Promise<R>);
    }
    while (pending.length > 0) yield await (pending.shift() as Promise<R>);
  } catch (err) {
    onFail?.(err);
    throw err;
  } finally {
    if (pending.length > 0) onFail?.(new Error('stopped early'));
    // Let stragglers settle before returning so nothing runs after the caller moved on.
    await Promise.allSettled(pending);
  }
}
