// The store contract (@task-cache/testkit) against the OCI image-layout store.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeContract } from '@task-cache/testkit';
import { parseDigest } from '../digest.js';
import { createLayoutStore } from './store.js';

storeContract(
  'image layout',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tc-layout-contract-'));
    return {
      store: createLayoutStore(dir, { fsync: false }),
      async tamper(digest: string, bytes: Uint8Array) {
        const { algorithm, encoded } = parseDigest(digest);
        await writeFile(join(dir, 'blobs', algorithm, encoded), bytes);
      },
      close: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { listTags: true, deleteManifest: true, maxEntrySize: false },
);
