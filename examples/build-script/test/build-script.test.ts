import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const exampleDir = fileURLToPath(new URL('../', import.meta.url));

function run(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // tsx + the root tsconfig: @task-cache/core loads from its TypeScript sources (no build needed).
    const child = spawn(
      join(repoRoot, 'node_modules/.bin/tsx'),
      ['--tsconfig', join(repoRoot, 'tsconfig.json'), script],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('examples/build-script', () => {
  it('bundles on the first run (miss, saved) and restores the same bundle on the second (hit)', async () => {
    // A private copy, so parallel runs and the checkout's own app/dist do not interfere.
    const work = await mkdtemp(join(tmpdir(), 'build-script-'));
    await cp(join(exampleDir, 'app', 'src'), join(work, 'app', 'src'), { recursive: true });
    const env = { TASK_CACHE_DIR: join(work, 'cache'), BUILD_SCRIPT_APP_DIR: join(work, 'app') };
    const script = join(exampleDir, 'src', 'build.ts');

    const first = await run(script, env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^miss: saved key=bundle-[0-9a-f]{64} total=\d+ms /);
    expect(first.stderr).toMatch(/^task: "bundle" saved to cache \(pushed (\d+)\/\1 chunks, [\d.]+ k?B\)\n$/);
    const bundle = await readFile(join(work, 'app', 'dist', 'app.js'));
    expect(bundle.toString()).toContain('were cache hits');
    const digest = createHash('sha256').update(bundle).digest('hex');

    await rm(join(work, 'app', 'dist'), { recursive: true });
    const second = await run(script, env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^hit: restored key=bundle-[0-9a-f]{64} total=\d+ms /);
    expect(second.stderr).toBe('task: "bundle" restored from cache\n');
    expect(
      createHash('sha256')
        .update(await readFile(join(work, 'app', 'dist', 'app.js')))
        .digest('hex'),
    ).toBe(digest);
    // Same key both times.
    expect(second.stdout.split(' ')[2]).toBe(first.stdout.split(' ')[2]);
  });
});
