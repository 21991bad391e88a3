/**
 * What `@task-cache/oci` owns about manifests: the standard media types (image-spec v1.1.1,
 * https://github.com/opencontainers/image-spec/blob/v1.1.1/media-types.md), how a reference is
 * told apart (digest or tag), and which content a manifest or index references. Every store
 * (registry, layout, core's memory and Redis stores) uses these instead of its own copy.
 */
import { isDigest, parseDigest } from './digest.js';
import { ManifestInvalidError } from './errors.js';
import { validateTag } from './reference.js';
import type { Descriptor } from './types.js';

/** OCI image manifest (image-spec v1.1.1 `manifest.md`). */
export const MEDIA_TYPE_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** OCI image index (image-spec v1.1.1 `image-index.md`); also the media type of a layout's `index.json`. */
export const MEDIA_TYPE_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
/** OCI image config (image-spec v1.1.1 `config.md`). */
export const MEDIA_TYPE_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** The empty descriptor's media type (`{}`, image-spec v1.1.1 `manifest.md#guidance-for-an-empty-descriptor`). */
export const MEDIA_TYPE_EMPTY_JSON = 'application/vnd.oci.empty.v1+json';
/** Docker image manifest v2 schema 2 (accepted on fetch, never written). */
export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** Docker manifest list (accepted on fetch, never written). */
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** The manifest media types a store hands out (the `Accept` of a registry manifest fetch). */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPE_IMAGE_MANIFEST,
  MEDIA_TYPE_IMAGE_INDEX,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_DOCKER_MANIFEST_LIST,
];

/** A manifest reference: a digest (`algorithm:hex`) or a tag. */
export type ManifestReference = { kind: 'digest'; digest: string } | { kind: 'tag'; tag: string };

/**
 * Tells a digest reference from a tag: anything with a `:` is a digest (a tag cannot hold one), of
 * any algorithm, and is validated as such; the rest must be a valid tag.
 * @throws {DigestInvalidError} for a malformed digest or an unsupported algorithm (`md5:…`).
 * @throws {TagInvalidError} for an invalid tag.
 */
export function parseManifestReference(reference: string): ManifestReference {
  if (typeof reference === 'string' && reference.includes(':')) {
    parseDigest(reference);
    return { kind: 'digest', digest: reference };
  }
  return { kind: 'tag', tag: validateTag(reference) };
}

/** What a manifest points at. */
export type ReferenceKind = 'config' | 'layer' | 'manifest' | 'subject';

/** One piece of content a manifest or index references, with its role. */
export interface ReferencedDescriptor extends Descriptor {
  /** `config` and `layer` of an image manifest, `manifest` for an index's children, `subject`. */
  kind: ReferenceKind;
}

/**
 * Parses manifest bytes as a JSON object.
 * @throws {ManifestInvalidError} when they are not JSON or not an object.
 */
export function parseManifestJson(bytes: Uint8Array, digest?: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (cause) {
    throw new ManifestInvalidError(`manifest${digest ? ` ${digest}` : ''} is not valid JSON`, {
      cause,
      ...(digest ? { digest } : {}),
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ManifestInvalidError(`manifest${digest ? ` ${digest}` : ''} is not a JSON object`, {
      ...(digest ? { digest } : {}),
    });
  }
  return doc as Record<string, unknown>;
}

/** Options of {@link manifestReferences}. */
export interface ManifestReferencesOptions {
  /**
   * Skip descriptors that cannot be read (no valid digest or size) instead of throwing, and take
   * a missing media type as `''`: for garbage collection, which must keep whatever it can see.
   * @default false
   */
  lenient?: boolean;
}

/**
 * The content a manifest or an index references directly, in this order: `config`, each of
 * `layers`, each of `manifests` (an index's children), then `subject` (OCI 1.1 referrers).
 *
 * The one answer to "which digests does a manifest reference". Stores check every kind but
 * `subject` before accepting a push (a registry answers `MANIFEST_BLOB_UNKNOWN` for those and
 * accepts a missing subject, distribution-spec v1.1.1 "Pushing Manifests with Subject"); garbage
 * collection keeps all four alive.
 * @throws {ManifestInvalidError} when the bytes are not a JSON object or (unless `lenient`) a
 *   descriptor in it is malformed (no valid digest, size or media type).
 */
export function manifestReferences(
  manifest: Uint8Array | Record<string, unknown>,
  options: ManifestReferencesOptions = {},
): ReferencedDescriptor[] {
  const doc = manifest instanceof Uint8Array ? parseManifestJson(manifest) : manifest;
  const out: ReferencedDescriptor[] = [];
  const add = (kind: ReferenceKind, value: unknown, where: string) => {
    const d = value as Partial<Descriptor> | null;
    if (options.lenient) {
      // Keep everything that names content: a collector must not drop what it cannot fully read.
      if (
        d &&
        isDigest(d.digest) &&
        typeof d.size === 'number' &&
        Number.isSafeInteger(d.size) &&
        d.size >= 0
      ) {
        out.push({
          kind,
          mediaType: typeof d.mediaType === 'string' ? d.mediaType : '',
          digest: d.digest,
          size: d.size,
        });
      }
      return;
    }
    if (typeof d !== 'object' || d === null || Array.isArray(d)) {
      throw new ManifestInvalidError(`manifest ${where} is not a descriptor`);
    }
    if (!isDigest(d.digest)) {
      throw new ManifestInvalidError(`manifest ${where} has an invalid digest ${JSON.stringify(d.digest)}`);
    }
    if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
      throw new ManifestInvalidError(`manifest ${where} has an invalid size ${JSON.stringify(d.size)}`, {
        digest: d.digest,
      });
    }
    if (typeof d.mediaType !== 'string') {
      throw new ManifestInvalidError(`manifest ${where} has no mediaType`, { digest: d.digest });
    }
    out.push({ kind, mediaType: d.mediaType, digest: d.digest, size: d.size });
  };
  const list = (field: 'layers' | 'manifests', kind: ReferenceKind) => {
    const value = doc[field];
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      if (options.lenient) return;
      throw new ManifestInvalidError(`manifest "${field}" is not an array`);
    }
    value.forEach((d, i) => {
      add(kind, d, `${field}[${i}]`);
    });
  };
  if (doc.config !== undefined) add('config', doc.config, 'config');
  list('layers', 'layer');
  list('manifests', 'manifest');
  if (doc.subject !== undefined) add('subject', doc.subject, 'subject');
  return out;
}
