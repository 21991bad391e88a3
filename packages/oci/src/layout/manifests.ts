// Manifests and tags of an image layout: manifests are blobs, stored byte-exact; tags are
// `index.json` entries. Like a registry, a push refuses a manifest whose content is missing.
import { sha256Digest } from '../digest.js';
import {
  BlobUnknownError,
  ManifestBlobUnknownError,
  ManifestInvalidError,
  ManifestUnknownError,
  SizeInvalidError,
} from '../errors.js';
import {
  MEDIA_TYPE_IMAGE_MANIFEST,
  manifestReferences,
  parseManifestJson,
  parseManifestReference,
} from '../manifest.js';
import { validateTag } from '../reference.js';
import type {
  Descriptor,
  FetchedManifest,
  ManifestDeleter,
  ManifestFetcher,
  ManifestPusher,
  PushManifestOptions,
  RequestOptions,
  Tagger,
  TagLister,
} from '../types.js';
import { checkDigest, checkSize, type LayoutBlobs } from './blobs.js';
import { type LayoutContext, MAX_MANIFEST_BYTES, sizeOf } from './files.js';
import { REF_NAME_ANNOTATION, readIndex, updateIndex } from './image-index.js';
import { missingBlobs, recordUse } from './prune.js';

/** The manifest and tag capabilities of a layout. */
export type LayoutManifests = ManifestFetcher & ManifestPusher & Tagger & TagLister & ManifestDeleter;

function descriptorFor(
  json: Record<string, unknown>,
  digest: string,
  size: number,
  mediaType?: string,
): Descriptor {
  const type = mediaType ?? (typeof json.mediaType === 'string' ? json.mediaType : MEDIA_TYPE_IMAGE_MANIFEST);
  const descriptor: Descriptor = { mediaType: type, digest, size };
  if (typeof json.artifactType === 'string') descriptor.artifactType = json.artifactType;
  return descriptor;
}

/** Creates the manifest part of a layout store over its blob part. */
export function createLayoutManifests(ctx: LayoutContext, blobs: LayoutBlobs): LayoutManifests {
  const { files, location } = ctx;

  async function fetchManifest(
    reference: string,
    opts?: RequestOptions,
  ): Promise<FetchedManifest | undefined> {
    const signal = opts?.signal;
    signal?.throwIfAborted();
    const ref = parseManifestReference(reference);
    if (ref.kind === 'digest') {
      const size = await sizeOf(files.blobPath(ref.digest));
      if (size === undefined) return undefined;
      await files.checkLayoutFile();
      const entry = (await readIndex(ctx))?.manifests.find((d) => d.digest === ref.digest);
      const bytes = await blobs.readManifestBlob({ digest: ref.digest, size: entry?.size ?? size }, signal);
      if (bytes === undefined) return undefined;
      const json = parseManifestJson(bytes, ref.digest);
      return { descriptor: descriptorFor(json, ref.digest, bytes.byteLength, entry?.mediaType), bytes };
    }
    const index = await readIndex(ctx);
    // The last entry wins should a foreign tool have left duplicates.
    const entry = index?.manifests.findLast((d) => d.annotations?.[REF_NAME_ANNOTATION] === ref.tag);
    if (entry === undefined) return undefined;
    const bytes = await blobs.readManifestBlob(entry, signal);
    if (bytes === undefined) {
      throw new BlobUnknownError(
        `tag ${ref.tag} in ${location} points at ${entry.digest}, which is not in the layout`,
        {
          digest: entry.digest,
        },
      );
    }
    const json = parseManifestJson(bytes, entry.digest);
    return { descriptor: descriptorFor(json, entry.digest, entry.size, entry.mediaType), bytes };
  }

  async function tag(descriptor: Descriptor, tagName: string, opts?: RequestOptions): Promise<void> {
    const digest = checkDigest(descriptor?.digest);
    const size = checkSize(descriptor.size, digest);
    const name = validateTag(tagName);
    if (typeof descriptor.mediaType !== 'string' || descriptor.mediaType.length === 0) {
      throw new ManifestInvalidError(`descriptor of ${digest} has no mediaType`, { digest });
    }
    opts?.signal?.throwIfAborted();
    const present = await sizeOf(files.blobPath(digest));
    if (present === undefined) {
      throw new ManifestUnknownError(`cannot tag ${name}: manifest ${digest} is not in ${location}`, {
        digest,
      });
    }
    if (present !== size) {
      throw new SizeInvalidError(
        `cannot tag ${name}: manifest ${digest} in ${location} is ${present} bytes, the descriptor says ${size}`,
        { digest },
      );
    }
    const entry: Descriptor = {
      mediaType: descriptor.mediaType,
      digest,
      size,
      annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: name },
    };
    if (descriptor.artifactType !== undefined) entry.artifactType = descriptor.artifactType;
    await updateIndex(
      ctx,
      opts?.signal,
      (manifests) => [
        // A tag move replaces the old descriptor for that ref name.
        ...manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== name),
        entry,
      ],
      async () => {
        // NOTE: under the index lock, where a prune deletes blobs: a tag never commits an entry
        // part of which a concurrent prune has just deleted (a save then re-pushes what is gone).
        const missing = await missingBlobs(ctx, blobs, entry, opts?.signal);
        if (missing.length > 0) {
          throw new ManifestBlobUnknownError(
            `cannot tag ${name}: manifest ${digest} references ${missing.length} blob(s) not in ${location}: ${missing.join(', ')}`,
            { digest, missingDigests: missing },
          );
        }
      },
    );
    await recordUse(ctx, name);
  }

  async function pushManifest(
    bytes: Uint8Array,
    mediaType: string,
    opts?: PushManifestOptions,
  ): Promise<Descriptor> {
    if (!(bytes instanceof Uint8Array)) throw new ManifestInvalidError('manifest bytes must be a Uint8Array');
    if (typeof mediaType !== 'string' || mediaType.length === 0) {
      throw new ManifestInvalidError('manifest mediaType must be a non-empty string');
    }
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw new ManifestInvalidError(
        `manifest is ${bytes.byteLength} bytes, above the ${MAX_MANIFEST_BYTES}-byte limit`,
      );
    }
    if (opts?.tag !== undefined) validateTag(opts.tag);
    opts?.signal?.throwIfAborted();
    const digest = sha256Digest(bytes);
    const json = parseManifestJson(bytes, digest);
    if (json.mediaType !== undefined && json.mediaType !== mediaType) {
      throw new ManifestInvalidError(
        `manifest mediaType ${JSON.stringify(json.mediaType)} differs from the given ${JSON.stringify(mediaType)}`,
        { digest },
      );
    }
    const missing: string[] = [];
    for (const ref of manifestReferences(json)) {
      if (ref.kind === 'subject') continue;
      if ((await sizeOf(files.blobPath(ref.digest))) === undefined) missing.push(ref.digest);
    }
    if (missing.length > 0) {
      throw new ManifestBlobUnknownError(
        `manifest ${digest} references ${missing.length} blob(s) not in ${location}: ${missing.join(', ')}`,
        { digest, missingDigests: missing },
      );
    }
    const descriptor = descriptorFor(json, digest, bytes.byteLength, mediaType);
    await blobs.pushBlob(descriptor, bytes, { signal: opts?.signal });
    if (opts?.tag !== undefined) await tag(descriptor, opts.tag, { signal: opts.signal });
    return descriptor;
  }

  async function* listTags(opts?: RequestOptions): AsyncIterable<string> {
    opts?.signal?.throwIfAborted();
    const index = await readIndex(ctx);
    const tags = new Set<string>();
    for (const d of index?.manifests ?? []) {
      const name = d.annotations?.[REF_NAME_ANNOTATION];
      if (typeof name === 'string') tags.add(name);
    }
    yield* [...tags].sort();
  }

  async function deleteManifest(digest: string, opts?: RequestOptions): Promise<void> {
    checkDigest(digest);
    opts?.signal?.throwIfAborted();
    if ((await readIndex(ctx)) === undefined) return;
    await updateIndex(ctx, opts?.signal, (manifests) => {
      const kept = manifests.filter((d) => d.digest !== digest);
      return kept.length < manifests.length ? kept : undefined;
    });
  }

  return { fetchManifest, pushManifest, tag, listTags, deleteManifest };
}
