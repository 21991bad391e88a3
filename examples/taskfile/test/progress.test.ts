import { describe, expect, it } from 'vitest';
import { createProgressBar, renderProgressLine } from '../src/progress.js';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 100, write: (t: string) => writes.push(t) } };
}

describe('progress bar', () => {
  it('renders chunks, bytes and a bar', () => {
    expect(
      renderProgressLine({
        task: 'build',
        phase: 'push',
        chunksDone: 21,
        chunksTotal: 42,
        bytesDone: 6_750_000,
      }),
    ).toBe('task: "build" pushing [############------------] 21/42 chunks, 6.8 MB');
    expect(renderProgressLine({ task: 'build', phase: 'fetch', chunksDone: 0, bytesDone: 0 })).toBe(
      'task: "build" restoring 0 chunks, 0 B',
    );
    expect(
      renderProgressLine({ task: 'build', phase: 'push', chunksDone: 1, chunksTotal: 2, bytesDone: 1 }, 20),
    ).toHaveLength(19);
  });

  it('a TTY that reports 0 columns (e.g. under script(1)) still gets the full line', () => {
    const writes: string[] = [];
    let t = 0;
    const bar = createProgressBar(
      { isTTY: true, columns: 0, write: (x: string) => writes.push(x) },
      { now: () => t },
    );
    bar.update({ task: 'b', phase: 'push', chunksDone: 0, chunksTotal: 2, bytesDone: 0 });
    t = 1000;
    bar.update({ task: 'b', phase: 'push', chunksDone: 1, chunksTotal: 2, bytesDone: 5 });
    expect(writes).toEqual(['\r\x1b[Ktask: "b" pushing [############------------] 1/2 chunks, 5 B']);
  });

  it('draws nothing on a non-TTY stream', () => {
    const { writes, stream } = fakeStream(false);
    let t = 0;
    const bar = createProgressBar(stream, { now: () => t });
    for (t = 0; t < 5000; t += 50)
      bar.update({ task: 'b', phase: 'push', chunksDone: 1, chunksTotal: 9, bytesDone: 1 });
    bar.clear();
    expect(writes).toEqual([]);
  });

  it('on a TTY, waits for the delay, throttles redraws and clears the line', () => {
    const { writes, stream } = fakeStream(true);
    let t = 0;
    const bar = createProgressBar(stream, { now: () => t, delayMs: 500, intervalMs: 100 });
    const p = (done: number) => ({
      task: 'b',
      phase: 'push' as const,
      chunksDone: done,
      chunksTotal: 10,
      bytesDone: done,
    });
    bar.update(p(1)); // t=0: starts the timer
    t = 400;
    bar.update(p(2)); // still within the delay
    expect(writes).toEqual([]);
    t = 600;
    bar.update(p(3));
    t = 650;
    bar.update(p(4)); // throttled
    t = 710;
    bar.update(p(5));
    t = 720;
    bar.update(p(10)); // the final state is always drawn
    expect(writes.map((w) => /(\d+)\/10/.exec(w)?.[1])).toEqual(['3', '5', '10']);
    expect(writes.every((w) => w.startsWith('\r\x1b[K'))).toBe(true);
    bar.clear();
    expect(writes.at(-1)).toBe('\r\x1b[K');
    // A quick transfer after clear() draws nothing again.
    const before = writes.length;
    bar.update(p(1));
    expect(writes.length).toBe(before);
  });
});
