import { describe, expect, it } from 'vitest';
import { formatBytes, formatEvent } from './format.js';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [999, '999 B'],
    [1000, '1.0 kB'],
    [1500, '1.5 kB'],
    [13_500_000, '13.5 MB'],
    [13_549_999, '13.5 MB'],
    [999_950, '1.0 MB'],
    [2_100_000_000, '2.1 GB'],
    [5_000_000_000_000, '5000.0 GB'],
  ])('%d → %s', (n, s) => {
    expect(formatBytes(n)).toBe(s);
  });
  it('rejects negative and non-finite counts', () => {
    expect(() => formatBytes(-1)).toThrow(RangeError);
    expect(() => formatBytes(Number.NaN)).toThrow(RangeError);
  });
});

describe('formatEvent', () => {
  it("prints the guide's saved line", () => {
    expect(
      formatEvent({
        type: 'saved',
        task: 'build',
        key: 'k',
        digest: 'sha256:x',
        chunksPushed: 42,
        chunksTotal: 42,
        bytesPushed: 13_500_000,
        bytesTotal: 40_000_000,
        files: 3,
        durationMs: 1,
      }),
    ).toBe('task: "build" saved to cache (pushed 42/42 chunks, 13.5 MB)');
  });
  it("prints the guide's restored line", () => {
    expect(
      formatEvent({
        type: 'restored',
        task: 'build',
        key: 'k',
        digest: 'sha256:x',
        chunksFetched: 1,
        bytesFetched: 1,
        files: 1,
        removed: 0,
        durationMs: 1,
      }),
    ).toBe('task: "build" restored from cache');
  });
  it('prints the format fallback as a note, not a warning', () => {
    expect(
      formatEvent({
        type: 'format-fallback',
        task: 'b',
        key: 'k',
        registry: 'registry.gitlab.example',
        from: 'standard',
        to: 'compat',
        code: 'MANIFEST_INVALID',
      }),
    ).toBe(
      'task: "b" cache note: registry.gitlab.example refused the standard entry form (MANIFEST_INVALID); saved in the compatible form, which this registry gets from now on',
    );
  });
  it('prints warnings and nothing for progress', () => {
    expect(formatEvent({ type: 'warning', task: 'b', code: 'SAVE_FAILED', message: 'save failed: x' })).toBe(
      'task: "b" cache warning: save failed: x',
    );
    expect(
      formatEvent({
        type: 'progress',
        task: 'b',
        key: 'k',
        phase: 'push',
        chunksDone: 1,
        bytesDone: 1,
        bytesProcessed: 1,
      }),
    ).toBeUndefined();
  });
});
