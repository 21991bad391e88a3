#!/usr/bin/env node
// `pnpm demo`: runs the demo task twice on the embedded default cache (no server needed) —
// the first run builds and saves, the second (after `rm -rf dist .task`) restores.
// TASK_CACHE_DIR is a fresh folder, emptied first, so every demo run shows a save then a restore.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'bin', 'task-cache-taskfile.mjs');
const cacheDir = process.env.DEMO_TASK_CACHE_DIR ?? join(here, '.cache');
const env = { ...process.env, TASK_CACHE_DIR: cacheDir };

const step = (text) => process.stderr.write(`\n$ ${text}\n`);
const clean = () => {
  rmSync(join(here, 'dist'), { recursive: true, force: true });
  rmSync(join(here, '.task'), { recursive: true, force: true });
};
// Runs `task-cache-taskfile build`, passing its stderr through live and keeping a copy to check the lines.
const task = () =>
  new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [bin, '--dir', here, 'build'], {
      env,
      stdio: ['inherit', 'inherit', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on('close', (code, signal) => {
      if (code !== 0) {
        process.stderr.write(`demo: task-cache-taskfile build exited with ${code ?? signal}\n`);
        process.exit(code ?? 1);
      }
      process.stderr.write(`(${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
      resolve(stderr);
    });
  });

rmSync(cacheDir, { recursive: true, force: true });
clean();
process.stderr.write(`demo: TASK_CACHE_DIR=${cacheDir} (emptied)\n`);

step('task-cache-taskfile build # first run: builds, then saves to the cache');
const first = await task();
step('rm -rf dist .task');
clean();
step('task-cache-taskfile build # second run: restores from the cache, build.sh does not run');
const second = await task();

const saved = /saved to cache \(pushed \d+\/\d+ chunks, /.test(first);
const restored = /restored from cache/.test(second) && !second.includes('./build.sh');
if (!saved || !restored) {
  process.stderr.write(
    `\ndemo: FAILED — expected a "saved to cache" line, then a "restored from cache" line\n`,
  );
  process.exit(1);
}
process.stderr.write(`\ndemo: OK — dist/ was restored from ${cacheDir}\n`);
