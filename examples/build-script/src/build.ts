/**
 * A custom build script — no task runner — that caches one real step (bundling `app/` with
 * esbuild) with the typed `@task-cache/core` API, and prints hit/miss and timings.
 *
 *   node dist/build.js                    # embedded default store, local lock
 *   TASK_CACHE_URL=oci://registry.example.com/team/app-bundle \
 *   TASK_CACHE_LOCK='redis://:PASSWORD@redis.example.com:6379' node dist/build.js
 *
 * Registry credentials come from TASK_CACHE_OCI_USER / TASK_CACHE_OCI_PASSWORD / TASK_CACHE_OCI_CA.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CacheEvent, createCache, formatEvent } from '@task-cache/core';
import { build, version as esbuildVersion } from 'esbuild';

// The app to bundle (overridable so the example's test can work on a private copy).
const appDir = process.env.BUILD_SCRIPT_APP_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'app');

const cache = createCache({
  store: process.env.TASK_CACHE_URL ?? '', // '' → the embedded default (a local OCI image layout)
  lock: process.env.TASK_CACHE_LOCK ?? '', // '' → the local lock
  readOnly: process.env.TASK_CACHE_READ_ONLY === 'true',
  onEvent: (event: CacheEvent) => {
    const line = formatEvent(event); // `task: "bundle" saved to cache (pushed 3/3 chunks, 1.2 kB)` …
    if (line) console.error(line);
  },
});

const ms = (value: number) => `${Math.round(value)}ms`;
const started = performance.now();
try {
  const result = await cache.run(
    {
      task: 'bundle',
      dir: appDir,
      sources: ['src/**'],
      generates: ['dist/**'],
      // Everything else the output depends on goes into the key, or a stale bundle gets restored.
      tools: { esbuild: esbuildVersion },
      env: ['NODE_ENV'],
    },
    async ({ signal }) => {
      signal.throwIfAborted();
      await build({
        entryPoints: [join(appDir, 'src', 'index.ts')],
        outfile: join(appDir, 'dist', 'app.js'),
        bundle: true,
        platform: 'node',
        format: 'esm',
        sourcemap: true,
        minify: process.env.NODE_ENV === 'production',
        logLevel: 'warning',
      });
    },
  );
  const s = result.stats;
  const verdict = result.status === 'restored' ? 'hit' : 'miss';
  console.log(
    `${verdict}: ${result.status}${result.reason ? ` (${result.reason})` : ''} key=${result.key} ` +
      `total=${Math.round(performance.now() - started)}ms checksum=${ms(s.checksumMs)} lookup=${ms(s.lookupMs)} ` +
      `build=${ms(s.buildMs)} save=${ms(s.saveMs)} restore=${ms(s.restoreMs)}`,
  );
} finally {
  await cache.close();
}
