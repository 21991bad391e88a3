#!/usr/bin/env node
/**
 * The JavaScript of a published package: `tsc` emits only the declarations (dist/**\/*.d.ts), and
 * esbuild bundles the sources into one file per entry point, flat in dist/, plus shared chunks
 * for what is imported lazily (`import()` behind the step that needs it stays lazy).
 *
 * Why (issue 14): Node's ESM loader pays for every module it resolves and links — with one
 * file per source module, `import('@task-cache/core')` loaded ~100 modules and spent most of its
 * time in the loader, not in our code. Dependencies stay external (`packages: 'external'`), so
 * other packages — `@task-cache/*` included — are shared, never copied: an error class of
 * `@task-cache/oci` is the same class whoever imports it.
 *
 * Usage, from a package's directory: `node ../../scripts/bundle.mjs [--inline-deps] src/index.ts …`
 * (entry points; a glob like `src/workers/*.worker.ts` is expanded by esbuild). Entry points are
 * written flat as dist/<name>.js: core's worker threads are spawned from `./<name>.worker.js`
 * next to the chunk that spawns them.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

const args = process.argv.slice(2);
// --inline-deps (an application, e.g. the Taskfile example's runner, not a library): third-party
// dependencies are bundled in too (the runner's YAML parser alone was ~40 CommonJS modules to load at
// every start); `@task-cache/*` stays external all the same.
const inlineDeps = args.includes('--inline-deps');
const entryPoints = args.filter((a) => a !== '--inline-deps');
if (entryPoints.length === 0) {
  console.error('usage: node scripts/bundle.mjs [--inline-deps] ENTRY.ts…');
  process.exit(2);
}

/** Removes the JavaScript of an earlier build (tsc's per-module files, old chunks); keeps the .d.ts. */
async function removeJs(dir) {
  let names;
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of names) {
    const path = join(dir, e.name);
    if (e.isDirectory()) await removeJs(path);
    else if (/\.(?:js|js\.map|mjs|mjs\.map)$/.test(e.name)) await rm(path);
  }
}

await removeJs('dist');
await build({
  entryPoints,
  outdir: 'dist',
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.18',
  ...(inlineDeps
    ? {
        // A CommonJS dependency's `require('process')` needs a real `require` in an ES module.
        banner: {
          js: "import { createRequire as __tcRequire } from 'node:module'; const require = __tcRequire(import.meta.url);",
        },
      }
    : { packages: 'external' }),
  // NOTE: the root tsconfig maps @task-cache/* to the workspace's sources (for the tests); without
  // this, esbuild would follow those paths and copy a sibling package into the bundle.
  external: ['@task-cache/*'],
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  logLevel: 'warning',
});
