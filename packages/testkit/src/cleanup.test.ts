import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// Regression: vitest ends its fork workers with SIGTERM (SIGKILL after 500 ms), which skips
// 'exit' handlers; before the fix a test file that forgot stop()/close() left redis-server and
// docker-registry running after the suite.

const INDEX = fileURLToPath(new URL('./index.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'testkit-cleanup-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Alive and not a zombie (an exited child of a dead parent may wait a while for init to reap it). */
const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
};

async function waitForDeath(pids: number[]): Promise<number[]> {
  // Bounded poll; this asserts an outcome (all dead), not how fast it happened.
  for (let i = 0; i < 300 && pids.some(isRunning); i++) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(isRunning);
}

/** Runs a child Node process that starts fixtures, reports their PIDs and their temp dirs, then idles. */
async function startOrphaningChild(): Promise<{ child: ChildProcess; pids: number[]; dirs: string[] }> {
  const script = join(dir, `child-${Date.now()}.mts`);
  writeFileSync(
    script,
    `import { startRedis, startRegistry } from ${JSON.stringify(INDEX)};
const redis = await startRedis();
const registry = await startRegistry({ mode: 'token' });
process.stdout.write(JSON.stringify({
  pids: [redis.pid, registry.pid, registry.tokenServer.pid],
  dirs: [registry.storageDir],
}) + '\\n');
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const report = await new Promise<{ pids: number[]; dirs: string[] }>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}: ${err}`)));
  });
  return { child, ...report };
}

describe('servers do not outlive the process that started them', () => {
  it('SIGTERM to the test process kills its servers and removes their temp dirs', async () => {
    const { child, pids, dirs } = await startOrphaningChild();
    expect(pids.every(isRunning)).toBe(true);
    child.kill('SIGTERM');
    const { signal } = await new Promise<{ signal: string | null }>((resolve) =>
      child.once('exit', (_code, sig) => resolve({ signal: sig })),
    );
    // The signal is re-raised after the clean-up, so the process still dies of SIGTERM.
    expect(signal).toBe('SIGTERM');
    expect(await waitForDeath(pids)).toEqual([]);
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  });

  it('SIGKILL to the test process still kills its servers (parent-death signal)', async () => {
    const { child, pids } = await startOrphaningChild();
    expect(pids.every(isRunning)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(await waitForDeath(pids)).toEqual([]);
  });
});
