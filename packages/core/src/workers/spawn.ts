/**
 * Starts one of core's worker threads. The published package runs the compiled `.js` next to
 * this file; the TypeScript sources (tests, benchmarks) run the `.ts` file through tsx's
 * register API (the workspace has tsx as a dev dependency).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const fromSource = import.meta.url.endsWith('.ts');

/** Starts the worker module `name` (`codec`, `pack`, `extract` or `write`) of this directory. */
export function spawnWorker(name: 'codec' | 'pack' | 'extract' | 'write'): Worker {
  const url = new URL(`./${name}.worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource) return new Worker(url);
  // NOTE: `--import tsx` in a worker's execArgv is not honoured; register tsx in the worker
  // itself, then import the TypeScript module.
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const api = pathToFileURL(pkg.replace(/package\.json$/, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); }).catch((err) => { console.error(err); process.exit(1); });`;
  return new Worker(code, { eval: true });
}
