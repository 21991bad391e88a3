import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLayoutStore } from '@task-cache/oci';
import { afterAll } from 'vitest';
import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir, removeDir, tempDir } from '../../test/helpers.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

const blobPath = (dir: string, digest: string) =>
  join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));

// The conformance suite saves and restores with the default stateDir: keep it out of HOME.
isolateCacheDir();

entryConformance(
  'oci-layout',
  async () => {
    const dir = await tempDir('tc-layout-');
    dirs.push(dir);
    const store = createLayoutStore(dir);
    return {
      store,
      tamperBlob: (digest, bytes) => writeFile(blobPath(dir, digest), bytes),
      removeBlob: (digest) => rm(blobPath(dir, digest)),
    };
  },
  // The big cases (300 MB file, 200 MB dedup) run here too: the layout is the embedded default.
  { tamper: true, big: true },
);
