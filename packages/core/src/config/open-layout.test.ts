import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createLayoutStore, REF_NAME_ANNOTATION } from '@task-cache/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PROCESSES = 6;
const TAGS_PER_PROCESS = 20;
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const openModule = pathToFileURL(fileURLToPath(new URL('./open.ts', import.meta.url))).href;

// The layout store's own default locker only excludes writers of one process; core opens every
// layout with @task-cache/lock's cross-process lock file. Each child opens the layout as core does
// (openStore), waits for "go" on stdin (so all of them write at the same time), then pushes
// TAGS_PER_PROCESS distinct manifests, each with its own config blob and its own tag.
const CHILD = `
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { openStore } from ${JSON.stringify(openModule)};
const [dir, prefix, count] = process.argv.slice(2);
const { store } = await openStore('oci-layout:' + dir);
const enc = (v) => new TextEncoder().encode(JSON.stringify(v));
const desc = (bytes, mediaType) => ({ mediaType, size: bytes.byteLength,
  digest: 'sha256:' + createHash('sha256').update(bytes).digest('hex') });
process.stdout.write('ready\\n');
for await (const line of createInterface({ input: process.stdin })) { if (line === 'go') break; }
for (let i = 0; i < Number(count); i++) {
  const config = enc({ prefix, i });
  const configDesc = desc(config, 'application/vnd.task-cache.entry.config.v1+json');
  await store.pushBlob(configDesc, config);
  const manifest = enc({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.task-cache.entry.v1', config: configDesc, layers: [] });
  await store.pushManifest(manifest, 'application/vnd.oci.image.manifest.v1+json', { tag: prefix + '-' + i });
}
process.stdout.write('done\\n');
`;

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tc-layout-mp-'));
  await writeFile(join(work, 'child.mjs'), CHILD);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function waitForLine(child: ChildProcess, wanted: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line === wanted) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited with ${code} before printing ${wanted}`)));
  });
}

describe('openStore(oci-layout:): concurrent writers from several processes', () => {
  it(`${PROCESSES} processes x ${TAGS_PER_PROCESS} tags leave a valid index.json with every tag`, async () => {
    const dir = join(work, 'layout');
    const children = Array.from({ length: PROCESSES }, (_, p) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(work, 'child.mjs'), dir, `p${p}`, String(TAGS_PER_PROCESS)],
        // From the repository root, so tsx resolves the workspace packages to their sources.
        { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const exited = new Promise<void>((resolve, reject) => {
        child.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`child p${p} exited with ${code}: ${stderr}`)),
        );
      });
      return { child, ready: waitForLine(child, 'ready'), exited };
    });
    await Promise.all(children.map((c) => c.ready));
    for (const { child } of children) child.stdin!.end('go\n');
    await Promise.all(children.map((c) => c.exited));

    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    expect(index.schemaVersion).toBe(2);
    const expected = children.flatMap((_, p) =>
      Array.from({ length: TAGS_PER_PROCESS }, (_, i) => `p${p}-${i}`),
    );
    const names = index.manifests.map(
      (d: { annotations: Record<string, string> }) => d.annotations[REF_NAME_ANNOTATION],
    );
    expect(names).toHaveLength(PROCESSES * TAGS_PER_PROCESS);
    expect([...names].sort()).toEqual([...expected].sort());

    // Every tag resolves to its own manifest, whose config blob reads back verified.
    const store = createLayoutStore(dir);
    for (const tag of expected) {
      const fetched = await store.fetchManifest(tag);
      const manifest = JSON.parse(Buffer.from(fetched!.bytes).toString('utf8'));
      const parts: Uint8Array[] = [];
      for await (const chunk of await store.fetchBlob(manifest.config)) parts.push(chunk);
      const [prefix, i] = tag.split('-');
      expect(JSON.parse(Buffer.concat(parts).toString('utf8'))).toEqual({ prefix, i: Number(i) });
    }
  });
});
