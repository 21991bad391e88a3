/**
 * The two entry forms on an in-memory store: a reader takes either without being told, a
 * refusal (400 MANIFEST_INVALID or 415) of the standard form falls back once and is remembered
 * per registry with an expiry, and a manifest refused in both forms is an error, not a rule.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestInvalidError, type OciStore, RegistryError } from '@task-cache/oci';
import { afterEach, describe, expect, it } from 'vitest';
import { removeDir, tempDir, writeTree } from '../../test/helpers.js';
import {
  FORM_REFUSAL_TTL_MS,
  recallRegistry,
  registryOf,
  rememberRegistry,
} from '../internal/registry-state.js';
import { createMemoryStore } from '../store/memory.js';
import { COMPAT_CONFIG_MEDIA_TYPE, ENTRY_ARTIFACT_TYPE, parseManifest } from './format.js';
import { lookupEntry } from './resolve.js';
import { saveEntry } from './save.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeDir(d);
});
async function dir(files: Record<string, string> = {}): Promise<string> {
  const d = await tempDir('tc-form-');
  dirs.push(d);
  await writeTree(d, files);
  return d;
}

/** A memory store that refuses manifests carrying `artifactType` (as GitLab does), with `refusal`. */
function allowlisting(refusal: (what: string) => Error, refuseAll = false): OciStore & { refused: number } {
  const inner = createMemoryStore();
  const store = Object.create(inner) as OciStore & { refused: number };
  // As a registry backend names itself: the registry is the host part.
  Object.defineProperty(store, 'location', { value: 'oci://registry.test:5000/team/cache' });
  store.refused = 0;
  store.pushManifest = async (bytes, mediaType, options) => {
    const doc = JSON.parse(Buffer.from(bytes).toString());
    if (refuseAll || doc.artifactType !== undefined) {
      store.refused += 1;
      throw refusal(`unknown media type: ${doc.artifactType}`);
    }
    return inner.pushManifest(bytes, mediaType, options);
  };
  return store;
}

const manifestInvalid = (m: string) => new ManifestInvalidError(m, { statusCode: 400 });
const unsupportedMediaType = (m: string) => new RegistryError(m, { statusCode: 415 });

describe('entry forms', () => {
  it('reads both forms without being told which; refuses a manifest that is neither', () => {
    const config = { mediaType: COMPAT_CONFIG_MEDIA_TYPE, digest: `sha256:${'a'.repeat(64)}`, size: 1 };
    const compat = {
      schemaVersion: 2,
      config,
      layers: [],
      annotations: { 'dev.task-cache.entry': ENTRY_ARTIFACT_TYPE },
    };
    expect(parseManifest(compat).form).toBe('compat');
    // An OCI image that is not ours (no annotation) is not an entry.
    expect(() => parseManifest({ ...compat, annotations: {} })).toThrow(/not a task-cache entry/);
    // The standard form must keep its own config media type.
    expect(() => parseManifest({ ...compat, artifactType: ENTRY_ARTIFACT_TYPE })).toThrow(/media type/);
  });

  for (const [label, refusal] of [
    ['400 MANIFEST_INVALID', manifestInvalid],
    ['415 Unsupported Media Type', unsupportedMediaType],
  ] as const) {
    it(`a ${label} refusal: compatible form in the same call, one onFallback, remembered for the registry`, async () => {
      const store = allowlisting(refusal);
      const stateDir = await dir();
      const src = await dir({ 'dist/a': 'a' });
      const calls: unknown[] = [];
      const opts = {
        dir: src,
        generates: ['dist/**'],
        task: 't',
        stateDir,
        onFallback: (i: unknown) => calls.push(i),
      };
      const first = await saveEntry(store, { ...opts, tag: 'one', key: 'one' });
      expect(first.form).toBe('compat');
      expect(calls).toEqual([
        {
          registry: 'registry.test:5000',
          from: 'standard',
          to: 'compat',
          code: refusal === manifestInvalid ? 'MANIFEST_INVALID' : 'OCI_ERR_REGISTRY',
        },
      ]);
      const second = await saveEntry(store, { ...opts, tag: 'two', key: 'two' });
      expect(second.form).toBe('compat');
      expect(store.refused).toBe(1);
      expect(calls).toHaveLength(1);
      const [file] = await readdir(join(stateDir, 'registries'));
      const doc = JSON.parse(await readFile(join(stateDir, 'registries', file!), 'utf8'));
      // Only the registry and the refusal: no repository, no credentials.
      expect(doc.registry).toBe('registry.test:5000');
      expect(doc.refused.form).toBe('standard');
      expect((await lookupEntry(store, { tag: 'one' }))?.configDescriptor.mediaType).toBe(
        COMPAT_CONFIG_MEDIA_TYPE,
      );
    });
  }

  it('a manifest refused in both forms fails with the registry error and is not remembered', async () => {
    const store = allowlisting(manifestInvalid, true);
    const stateDir = await dir();
    const src = await dir({ 'dist/a': 'a' });
    await expect(
      saveEntry(store, { dir: src, generates: ['dist/**'], tag: 'x', task: 't', key: 'x', stateDir }),
    ).rejects.toBeInstanceOf(ManifestInvalidError);
    expect(store.refused).toBe(2);
    expect(await recallRegistry(stateDir, store.location)).toBeUndefined();
  });

  it('format: "standard" never falls back; format: "compat" never tries the standard form', async () => {
    const store = allowlisting(manifestInvalid);
    const src = await dir({ 'dist/a': 'a' });
    const opts = { dir: src, generates: ['dist/**'], task: 't', stateDir: false } as const;
    await expect(
      saveEntry(store, { ...opts, tag: 's', key: 's', format: 'standard' }),
    ).rejects.toBeInstanceOf(ManifestInvalidError);
    expect(store.refused).toBe(1);
    expect((await saveEntry(store, { ...opts, tag: 'c', key: 'c', format: 'compat' })).form).toBe('compat');
    expect(store.refused).toBe(1);
    await expect(
      saveEntry(store, { ...opts, tag: 'c', key: 'c', format: 'zip' as 'compat' }),
    ).rejects.toThrow(/format/);
  });

  it('a remembered refusal expires, and the registry is keyed by host only', async () => {
    const stateDir = await dir();
    const location = 'oci://r.test/a/b';
    const now = Date.now();
    const until = new Date(now + FORM_REFUSAL_TTL_MS).toISOString();
    await rememberRegistry(stateDir, location, {
      refused: { form: 'standard', code: 'MANIFEST_INVALID', at: new Date(now).toISOString(), until },
    });
    expect((await recallRegistry(stateDir, 'oci://r.test/other/repo'))?.refused?.code).toBe(
      'MANIFEST_INVALID',
    );
    expect(await recallRegistry(stateDir, 'oci://r2.test/a/b')).toBeUndefined();
    expect(
      (await recallRegistry(stateDir, location, now + FORM_REFUSAL_TTL_MS + 1))?.refused,
    ).toBeUndefined();
    expect(registryOf('oci://h:5000')).toBe('h:5000');
    expect(await recallRegistry(false, location)).toBeUndefined();
  });
});
