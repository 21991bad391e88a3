// The store contract (@task-cache/testkit) against the registry client and the REAL CNCF
// distribution registry, in anonymous mode and with token auth over TLS.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type RegistryFixture, type RegistryMode, startRegistry, storeContract } from '@task-cache/testkit';
import { afterAll, beforeAll } from 'vitest';
import { createOciBackend, type OciBackend } from './client.js';
import { parseDigest } from './digest.js';

const registries = new Map<RegistryMode, RegistryFixture>();
let repoSeq = 0;

beforeAll(async () => {
  const [anonymous, token] = await Promise.all([
    startRegistry({ mode: 'anonymous' }),
    startRegistry({ mode: 'token' }),
  ]);
  registries.set('anonymous', anonymous);
  registries.set('token', token);
});
afterAll(async () => {
  for (const reg of registries.values()) await reg.close();
});

function registryFixture(mode: 'anonymous' | 'token') {
  return async () => {
    const reg = registries.get(mode)!;
    const store: OciBackend = createOciBackend({
      url: reg.ociUrl(`contract/r${++repoSeq}`),
      authFiles: null,
      env: {},
      minRetryDelayMs: 10,
      maxRetryDelayMs: 50,
      ...(mode === 'token' ? { credentials: { username: reg.username, password: reg.password } } : {}),
    });
    return {
      store,
      // The registry serves a blob's `data` file as it is; same-size garbage reaches the client.
      async tamper(digest: string, bytes: Uint8Array) {
        const { algorithm, encoded } = parseDigest(digest);
        const path = join(
          reg.storageDir,
          'docker/registry/v2/blobs',
          algorithm,
          encoded.slice(0, 2),
          encoded,
          'data',
        );
        await writeFile(path, bytes);
      },
    };
  };
}

const capabilities = { listTags: true, deleteManifest: true, maxEntrySize: false };
storeContract('registry (anonymous)', registryFixture('anonymous'), capabilities);
storeContract('registry (token auth, TLS)', registryFixture('token'), capabilities);
