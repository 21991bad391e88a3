/**
 * `run --explain`, `run --summary`, `explain`, `stats`, `prune` and the signature line of `inspect`,
 * through the built binary on the embedded store (temp dirs only: HOME stays empty).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cli, requireBuilt, sandbox } from './helpers.js';

let box: Awaited<ReturnType<typeof sandbox>>;
beforeAll(() => requireBuilt());
beforeEach(async () => {
  box = await sandbox();
  await mkdir(join(box.project, 'src'), { recursive: true });
  await writeFile(join(box.project, 'src', 'a.txt'), 'a\n');
  // A named task, so that `run build` and `explain build` need no flags.
  await writeFile(
    join(box.project, 'task-cache.json'),
    JSON.stringify({
      tasks: {
        build: { command: 'mkdir -p out; cat src/a.txt > out/x', sources: ['src/**'], generates: ['out/**'] },
      },
    }),
  );
});
afterEach(async () => {
  // Hermetic: nothing written to HOME.
  await expect(readdir(box.env.HOME as string)).rejects.toThrow(/ENOENT/);
  await box.cleanup();
});

const run = (args: string[], env: Record<string, string> = {}) =>
  cli(args, box.project, { ...box.env, ...env });
const misses = (stderr: string) => stderr.split('\n').filter((l) => l.includes('cache miss:'));

describe('run --explain, --summary FILE', () => {
  it('prints one "cache miss" line naming what changed; the summary file lists the run', async () => {
    const first = await run(['run', 'build', '--explain', '--summary', 'summary.json']);
    expect(first.code, first.stderr).toBe(0);
    expect(misses(first.stderr)).toEqual(['task: "build" cache miss: no previous entry of this task']);
    const summary = JSON.parse(await readFile(join(box.project, 'summary.json'), 'utf8'));
    expect(summary.runs).toHaveLength(1);
    expect(summary.runs[0]).toMatchObject({ task: 'build', status: 'saved', missReason: 'not-found' });
    expect(summary.totals[0]).toMatchObject({ task: 'build', runs: 1, misses: 1 });

    await writeFile(join(box.project, 'src', 'a.txt'), 'b\n');
    const second = await run(['run', 'build'], { TASK_CACHE_EXPLAIN: '1' });
    expect(second.code, second.stderr).toBe(0);
    expect(misses(second.stderr)).toEqual(['task: "build" cache miss: src/a.txt changed']);
    // Without --explain, no such line.
    await writeFile(join(box.project, 'src', 'a.txt'), 'c\n');
    expect(misses((await run(['run', 'build'])).stderr)).toEqual([]);
  });
});

describe('explain', () => {
  it('prints the inputs that changed since the previous entry, for a named task or flags', async () => {
    const none = await run(['explain', 'build']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toMatch(/^previous: +no previous entry of this task$/m);
    expect((await run(['run', 'build'])).code).toBe(0);
    const same = await run(['explain', 'build']);
    expect(same.stdout).toContain("the key is the previous entry's: a hit");

    await writeFile(join(box.project, 'src', 'a.txt'), 'b\n');
    await writeFile(join(box.project, 'src', 'new.txt'), 'n\n');
    const changed = await run(['explain', 'build', '--json']);
    expect(changed.code, changed.stderr).toBe(0);
    const e = JSON.parse(changed.stdout);
    expect(e.previous).toMatchObject({ status: 'found' });
    expect(e.key).not.toBe(e.previous.key);
    expect(e.changes).toEqual([
      { input: 'source', change: 'changed', path: 'src/a.txt' },
      { input: 'source', change: 'added', path: 'src/new.txt' },
    ]);
    const text = await run(['explain', 'build']);
    expect(text.stdout).toContain('  src/a.txt changed\n');
    // The same flags as run: another command line is another key, and says so.
    const flags = await run([
      'explain',
      '--task',
      'build',
      '--sources',
      'src/**',
      '--',
      'sh',
      '-c',
      'echo other',
    ]);
    expect(flags.code, flags.stderr).toBe(0);
    expect(flags.stdout).toMatch(/command/);
    // Nothing was run or saved by explain.
    expect((await run(['ls', '--task', 'build', '--json'])).stdout.match(/build-/g)).toHaveLength(1);
    expect((await run(['explain', 'nope'])).code).toBe(64);
  });
});

describe('stats, prune', () => {
  it('stats adds up the runs of the state dir', async () => {
    expect((await run(['stats'])).stdout).toBe('no runs recorded yet\n');
    await run(['run', 'build']);
    await run(['run', 'build']);
    const r = await run(['stats', '--json']);
    expect(r.code, r.stderr).toBe(0);
    // One row per task and store (the second run is the up-to-date stamp's hit: no store opened).
    const rows = JSON.parse(r.stdout) as { task: string; runs: number; hits: number; misses: number }[];
    expect(rows.every((c) => c.task === 'build')).toBe(true);
    const sum = (k: 'runs' | 'hits' | 'misses') => rows.reduce((n, c) => n + c[k], 0);
    expect([sum('runs'), sum('hits'), sum('misses')]).toEqual([2, 1, 1]);
    const text = await run(['stats']);
    expect(text.stdout).toMatch(/^task +store +runs +hits +misses /);
    expect(text.stdout).toMatch(/^build +oci:\S+ +1 +0 +1 /m);
    expect((await run(['stats', '--cache', 'x'])).code).toBe(64);
  });

  it('prune --dry-run reports what would go and removes nothing; prune removes it', async () => {
    await run(['run', 'build']);
    await writeFile(join(box.project, 'src', 'a.txt'), 'b\n');
    await run(['run', 'build']);
    const before = JSON.parse((await run(['ls', '--json'])).stdout) as string[];
    expect(before).toHaveLength(2);
    // A bound of 1 byte: everything but the most recently used entry goes.
    const tiny = { TASK_CACHE_MAX_SIZE: '1' };
    const dry = await run(['prune', '--dry-run', '--json'], tiny);
    expect(dry.code, dry.stderr).toBe(0);
    const report = JSON.parse(dry.stdout);
    expect(report).toMatchObject({ supported: true, dryRun: true });
    expect(report.removedTags).toHaveLength(1);
    expect(JSON.parse((await run(['ls', '--json'])).stdout)).toHaveLength(2);
    const real = await run(['prune'], tiny);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toContain(`removed 1 entry`);
    const after = JSON.parse((await run(['ls', '--json'])).stdout) as string[];
    expect(after).toEqual(before.filter((t) => !report.removedTags.includes(t)));
  });
});

describe('inspect: signature status', () => {
  it('checks the signature against TASK_CACHE_TRUSTED_KEYS when set', async () => {
    const pem = (k: ReturnType<typeof generateKeyPairSync>) => ({
      priv: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      pub: k.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    });
    const mine = pem(generateKeyPairSync('ed25519'));
    const other = pem(generateKeyPairSync('ed25519'));
    await writeFile(join(box.root, 'signing.pem'), mine.priv);
    const saved = await run(['run', 'build', '--json'], {
      TASK_CACHE_SIGNING_KEY: join(box.root, 'signing.pem'),
    });
    expect(saved.code, saved.stderr).toBe(0);
    const { key } = JSON.parse(saved.stdout);
    const view = async (env: Record<string, string> = {}) =>
      JSON.parse((await run(['inspect', key, '--json'], env)).stdout).signature;
    expect(await view()).toMatchObject({ signed: true, signer: expect.stringMatching(/^sha256:/) });
    expect((await view()).verified).toBeUndefined();
    expect(await view({ TASK_CACHE_TRUSTED_KEYS: mine.pub })).toMatchObject({ verified: true });
    const bad = await view({ TASK_CACHE_TRUSTED_KEYS: other.pub });
    expect(bad).toMatchObject({ verified: false, text: expect.stringContaining('NOT TRUSTED') });
    const text = await run(['inspect', key], { TASK_CACHE_TRUSTED_KEYS: mine.pub });
    expect(text.stdout).toMatch(/^signature: +valid by sha256:/m);

    await writeFile(join(box.project, 'src', 'a.txt'), 'unsigned\n');
    const plain = JSON.parse((await run(['run', 'build', '--json'])).stdout);
    const unsigned = await run(['inspect', plain.key, '--json'], { TASK_CACHE_TRUSTED_KEYS: mine.pub });
    expect(JSON.parse(unsigned.stdout).signature).toMatchObject({ signed: false, verified: false });
    expect((await run(['inspect', key], { TASK_CACHE_TRUSTED_KEYS: 'not a key' })).code).toBe(64);
  });
});
