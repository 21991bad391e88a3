import type { Row } from './csv.js';

export function formatReport(rows: Row[]): string {
  const total = rows.reduce((s, r) => s + r.seconds, 0);
  const saved = rows.filter((r) => r.cached).reduce((s, r) => s + r.seconds, 0);
  const lines = rows.map(
    (r) => `${r.task.padEnd(8)} ${r.seconds.toFixed(1).padStart(6)} s ${r.cached ? '(cache hit)' : ''}`,
  );
  return [...lines, `total ${total.toFixed(1)} s, of which ${saved.toFixed(1)} s were cache hits`].join('\n');
}
