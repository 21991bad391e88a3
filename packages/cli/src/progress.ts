/**
 * The progress line on a TTY: shown only for a transfer (push or fetch) that has lasted longer than a
 * second, redrawn at most ten times a second, cleared before any other line is printed.
 */
import { type CacheProgressEvent, formatBytes } from '@task-cache/core';

/** Draws the progress of `progress` events on `out` (a TTY). */
export interface ProgressLine {
  update(event: CacheProgressEvent): void;
  /** Clears the line (before printing anything else, and at the end). */
  clear(): void;
}

/** A progress line on `out`; `enabled: false` gives one that draws nothing. */
export function progressLine(
  out: NodeJS.WritableStream & { columns?: number },
  enabled: boolean,
): ProgressLine {
  let started: number | undefined;
  let phase: string | undefined;
  let drawnAt = 0;
  let shown = false;
  const clear = () => {
    if (shown) out.write('\r\x1b[K');
    shown = false;
  };
  return {
    update(e) {
      if (!enabled) return;
      const now = performance.now();
      if (phase !== e.phase) {
        phase = e.phase;
        started = now;
      }
      if (now - (started ?? now) < 1000 || now - drawnAt < 100) return;
      drawnAt = now;
      const width = 20;
      const total = e.chunksTotal;
      const filled = total ? Math.min(width, Math.round((e.chunksDone / total) * width)) : 0;
      const bar = total ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
      const verb = e.phase === 'push' ? 'pushing' : 'fetching';
      const line = `task: ${JSON.stringify(e.task)} ${bar}${verb} ${e.chunksDone}${total ? `/${total}` : ''} chunks, ${formatBytes(e.bytesDone)}`;
      // NOTE: a terminal of unknown width (0 or undefined columns) gets 80.
      const width80 = out.columns && out.columns > 20 ? out.columns - 1 : 80;
      out.write(`\r\x1b[K${line.slice(0, width80)}`);
      shown = true;
    },
    clear,
  };
}
