/** Builds hostile entries by hand: an archive of arbitrary headers with an otherwise consistent config. */
import { createHash } from 'node:crypto';
import type { Descriptor, OciStore } from '@task-cache/oci';
import * as tar from 'tar-stream';
import {
  CHUNK_MEDIA_TYPE,
  COMPAT_CONFIG_MEDIA_TYPE,
  compatConfig,
  ENTRY_ANNOTATION,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE,
  type EntryConfig,
  type EntryForm,
  OCI_MANIFEST_MEDIA_TYPE,
} from '../src/entry/format.js';
import { getZstdCodec } from '../src/internal/zstd.js';

export interface HostileEntry {
  header: Partial<tar.Header> & { name: string };
  data?: string | Buffer;
}

export interface Tamper {
  /** Declare this uncompressed size for the (single) chunk instead of the real one. */
  declaredSize?: number;
  /** Declare this uncompressed digest instead of the real one. */
  declaredDigest?: string;
  /** The config's `archive.mtimes` (`kept`: the restore applies the archive's mtimes). @default 'zero' */
  mtimes?: 'zero' | 'kept';
  /** The config's `task` (a poisoned entry claims the running task to get past the collision check). @default 'hostile' */
  task?: string;
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function archive(entries: readonly HostileEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  const done = (async () => {
    for await (const p of pack as unknown as AsyncIterable<Buffer>) parts.push(p);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.data !== undefined) pack.entry(e.header, e.data, cb);
      else pack.entry(e.header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

/** Pushes an entry whose archive holds `entries` (one chunk), tagged `tag`, in `form`. */
export async function pushHostile(
  store: OciStore,
  tag: string,
  entries: readonly HostileEntry[],
  tamper: Tamper = {},
  form: EntryForm = 'standard',
): Promise<void> {
  await pushArchive(store, tag, await archive(entries), entries.length, tamper, form);
}

/**
 * Pushes an entry whose (single) chunk is the archive `raw` as it is — e.g. one written by
 * `hostileTar` of `@task-cache/testkit` — with an otherwise consistent config, tagged `tag`, in `form`.
 */
export async function pushArchive(
  store: OciStore,
  tag: string,
  raw: Buffer,
  files = 1,
  tamper: Tamper = {},
  form: EntryForm = 'standard',
): Promise<void> {
  const compat = form === 'compat';
  const compressed = await getZstdCodec('auto').compress(raw, 3);
  const layer: Descriptor = {
    mediaType: CHUNK_MEDIA_TYPE,
    digest: sha(compressed),
    size: compressed.byteLength,
  };
  await store.pushBlob(layer, compressed);
  const size = tamper.declaredSize ?? raw.byteLength;
  const configDoc = {
    formatVersion: 1,
    task: tamper.task ?? 'hostile',
    key: tag,
    created: new Date().toISOString(),
    producer: { name: 'hand', version: '0' },
    files,
    size,
    archive: { format: 'tar', mtimes: tamper.mtimes ?? 'zero' },
    chunking: {
      algorithm: 'fastcdc2020',
      avgSize: 1048576,
      minSize: 262144,
      maxSize: 4194304,
      normalization: 2,
      seed: 0,
    },
    compression: { algorithm: 'zstd', level: 3 },
    chunks: [{ size, digest: tamper.declaredDigest ?? sha(raw) }],
    sources: [],
  } as EntryConfig;
  const config = Buffer.from(JSON.stringify(compat ? compatConfig(configDoc) : configDoc));
  const configDesc: Descriptor = {
    mediaType: compat ? COMPAT_CONFIG_MEDIA_TYPE : ENTRY_CONFIG_MEDIA_TYPE,
    digest: sha(config),
    size: config.byteLength,
  };
  await store.pushBlob(configDesc, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      ...(compat ? {} : { artifactType: ENTRY_ARTIFACT_TYPE }),
      config: configDesc,
      layers: [layer],
      ...(compat ? { annotations: { [ENTRY_ANNOTATION]: ENTRY_ARTIFACT_TYPE } } : {}),
    }),
  );
  await store.pushManifest(manifest, OCI_MANIFEST_MEDIA_TYPE, { tag });
}

const base = { uid: 0, gid: 0, mtime: new Date(0) };
export const file = (name: string, data = 'x', mode = 0o644): HostileEntry => ({
  header: { ...base, name, type: 'file', mode },
  data,
});
export const dir = (name: string): HostileEntry => ({
  header: { ...base, name, type: 'directory', mode: 0o755 },
});
export const link = (name: string, linkname: string): HostileEntry => ({
  header: { ...base, name, type: 'symlink', linkname, mode: 0o777 },
});
export const hardlink = (name: string, linkname: string): HostileEntry => ({
  header: { ...base, name, type: 'link', linkname, mode: 0o644 },
});
export const device = (name: string): HostileEntry => ({
  header: { ...base, name, type: 'character-device', mode: 0o644, devmajor: 1, devminor: 3 },
});
export const fifo = (name: string): HostileEntry => ({
  header: { ...base, name, type: 'fifo', mode: 0o644 },
});
