/**
 * The commit of a save, after every chunk is stored: the config blob, then the manifest (or the
 * child manifests and the index) pushed with the tag last — the tag is the commit, so a failure
 * before it leaves no visible entry.
 */
import { createHash } from 'node:crypto';
import type { Descriptor } from '@task-cache/oci';
import type { ChunkParams } from '../internal/chunk.js';
import {
  COMPAT_CONFIG_MEDIA_TYPE,
  compatConfig,
  ENTRY_ANNOTATION,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_ARTIFACT_TYPE_V2,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  type EntryConfig,
  type EntryForm,
  OCI_INDEX_MEDIA_TYPE,
  OCI_MANIFEST_MEDIA_TYPE,
  PACKING,
} from './format.js';
import type { PushedChunks } from './save-chunks.js';
import type { SaveSettings } from './save-options.js';
import type { BlobPushing } from './save-push.js';
import type { EntryWriter } from './types.js';

const PRODUCER = { name: '@task-cache/core', version: '0.1.0' };

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/**
 * Pushes the config and the manifest(s) in `form` (docs/format.md §4–§5); returns the tagged
 * descriptor and the bytes pushed. The chunks are the same in both forms: a retry in the
 * compatible form after a refusal pushes only a config and manifests.
 */
export async function commitEntry(
  store: EntryWriter,
  o: SaveSettings,
  params: ChunkParams,
  pusher: BlobPushing,
  pushed: PushedChunks,
  form: EntryForm,
  signal: AbortSignal | undefined,
): Promise<{ top: Descriptor; manifestBytes: number }> {
  const compat = form === 'compat';
  const v2 = pushed.version === 2;
  if (compat && v2) throw new TypeError('the compatible form holds format version 1 entries only');
  const config: EntryConfig = {
    formatVersion: pushed.version,
    task: o.task,
    key: o.key,
    created: new Date().toISOString(),
    producer: PRODUCER,
    files: pushed.files,
    size: pushed.bytesTotal,
    archive: { format: 'tar', mtimes: o.keepMtimes ? 'kept' : 'zero' },
    chunking: { algorithm: 'fastcdc2020', ...params },
    compression: { algorithm: 'zstd', level: o.level },
    ...(v2 ? { packing: { algorithm: PACKING.algorithm, ...(pushed.packing ?? PACKING) } } : {}),
    chunks: pushed.chunks,
    sources: o.sources,
    ...(o.inputs ? { inputs: o.inputs } : {}),
    ...(o.buildDurationMs !== undefined ? { buildDurationMs: o.buildDurationMs } : {}),
  };
  const configBytes = json(compat ? compatConfig(config) : config);
  const configDesc: Descriptor = {
    mediaType: compat ? COMPAT_CONFIG_MEDIA_TYPE : v2 ? ENTRY_CONFIG_MEDIA_TYPE_V2 : ENTRY_CONFIG_MEDIA_TYPE,
    digest: sha256(configBytes),
    size: configBytes.byteLength,
  };
  await pusher.ensure(configDesc, configBytes, signal);

  const annotations: Record<string, string> = {
    'org.opencontainers.image.created': config.created,
    'dev.task-cache.task': o.task,
    // The signature covers the config digest, every layer digest, the key and the task
    // (docs/format.md "Signatures"); it is on the tagged manifest or index.
    ...o.sign?.({
      key: o.key,
      task: o.task,
      config: configDesc.digest,
      layers: pushed.layers.map((l) => l.digest),
    }),
  };
  // NOTE: the compatible form says "task-cache entry" with an annotation: registries that
  // allowlist media types refuse an unknown `artifactType` but keep annotations as they are.
  if (compat) annotations[ENTRY_ANNOTATION] = ENTRY_ARTIFACT_TYPE;
  const artifactType = compat ? {} : { artifactType: v2 ? ENTRY_ARTIFACT_TYPE_V2 : ENTRY_ARTIFACT_TYPE };
  const manifestOf = (group: Descriptor[]) => ({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    ...artifactType,
    config: configDesc,
    layers: group,
    annotations,
  });

  const { layers } = pushed;
  let manifestBytes = 0;
  if (layers.length <= o.layerCap) {
    const bytes = json(manifestOf(layers));
    const top = await store.pushManifest(bytes, OCI_MANIFEST_MEDIA_TYPE, { tag: o.tag, signal });
    return { top, manifestBytes: bytes.byteLength };
  }
  const children: Descriptor[] = [];
  for (let i = 0; i < layers.length; i += o.layerCap) {
    const bytes = json(manifestOf(layers.slice(i, i + o.layerCap)));
    const d = await store.pushManifest(bytes, OCI_MANIFEST_MEDIA_TYPE, { signal });
    manifestBytes += bytes.byteLength;
    children.push({
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      digest: d.digest,
      size: d.size,
      ...artifactType,
    });
  }
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    ...artifactType,
    manifests: children,
    annotations,
  };
  const bytes = json(index);
  const top = await store.pushManifest(bytes, OCI_INDEX_MEDIA_TYPE, { tag: o.tag, signal });
  return { top, manifestBytes: manifestBytes + bytes.byteLength };
}
