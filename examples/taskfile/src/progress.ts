/**
 * A one-line progress bar on stderr for cache transfers, shown only on a TTY and only once a
 * transfer has taken more than a moment (so quick hits print nothing but their result line).
 */
import { formatBytes } from '@task-cache/core';

/** What the bar shows. */
export interface ProgressUpdate {
  task: string;
  phase: 'push' | 'fetch';
  chunksDone: number;
  chunksTotal?: number;
  /** Compressed bytes moved so far. */
  bytesDone: number;
}

/** The stream the bar draws on (`process.stderr`, or a fake in tests). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Options of {@link createProgressBar}. */
export interface ProgressBarOptions {
  /** Draw nothing until a transfer has run this long. @default 500 */
  delayMs?: number;
  /** Redraw at most this often. @default 100 */
  intervalMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** A progress bar; `clear()` before printing any other line on the same stream. */
export interface ProgressBar {
  update(progress: ProgressUpdate): void;
  /** Erases the bar (if drawn) and resets the timer for the next transfer. */
  clear(): void;
}

const WIDTH = 24;

/** Renders the bar's text (without control characters). */
export function renderProgressLine(progress: ProgressUpdate, columns = 80): string {
  const verb = progress.phase === 'push' ? 'pushing' : 'restoring';
  const total = progress.chunksTotal;
  const ratio = total ? Math.min(1, progress.chunksDone / total) : 0;
  const filled = Math.round(ratio * WIDTH);
  // NOTE: while a save is still packing, the number of chunks is not known yet: no bar then.
  const bar = total ? ` [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}]` : '';
  const counts = `${progress.chunksDone}${total ? `/${total}` : ''} chunks, ${formatBytes(progress.bytesDone)}`;
  const line = `task: ${JSON.stringify(progress.task)} ${verb}${bar} ${counts}`;
  return line.length > columns - 1 ? line.slice(0, Math.max(0, columns - 1)) : line;
}

/** A bar on `stream`; on a non-TTY stream every call is a no-op. */
export function createProgressBar(stream: ProgressStream, options: ProgressBarOptions = {}): ProgressBar {
  const delayMs = options.delayMs ?? 500;
  const intervalMs = options.intervalMs ?? 100;
  const now = options.now ?? Date.now;
  let startedAt: number | undefined;
  let drawnAt: number | undefined;
  if (!stream.isTTY) return { update() {}, clear() {} };
  return {
    update(progress) {
      const t = now();
      startedAt ??= t;
      if (t - startedAt < delayMs) return;
      const finished = progress.chunksTotal !== undefined && progress.chunksDone >= progress.chunksTotal;
      if (drawnAt !== undefined && t - drawnAt < intervalMs && !finished) return;
      drawnAt = t;
      stream.write(`\r\x1b[K${renderProgressLine(progress, stream.columns || 80)}`);
    },
    clear() {
      if (drawnAt !== undefined) stream.write('\r\x1b[K');
      startedAt = undefined;
      drawnAt = undefined;
    },
  };
}
