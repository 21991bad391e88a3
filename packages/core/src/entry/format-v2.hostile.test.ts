/**
 * Hand-built format version 2 entries (docs/format.md §11.2, §8.1) on the memory store: every
 * inconsistency between a v2 config, its manifest and its packs is a typed error
 * (`EntryCorruptError`, or `EntryTooLargeError` where a size cap is the reason) and leaves the
 * outputs exactly as they were — on the inline path and on the worker path (`inlineBelow: 0`).
 * The entries are built the way test/hostile.ts builds v1 ones: a tar of a few files, cut by hand
 * into chunks, each compressed into one zstd frame, frames concatenated into packs, a v2 config
 * and manifest written by hand. One well-formed entry restores first, so that each hostile case
 * differs from a valid entry only by what it breaks.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor } from '@task-cache/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, seededBytes, tempDir, treeHash, writeTree } from '../../test/helpers.js';
import { archive, dir, file, type HostileEntry } from '../../test/hostile.js';
import { EntryCorruptError, EntryTooLargeError } from '../errors.js';
import { getZstdCodec } from '../internal/zstd.js';
import { createMemoryStore, type MemoryStore } from '../store/memory.js';
import {
  CHUNK_MEDIA_TYPE,
  compressBound,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_ARTIFACT_TYPE_V2,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  OCI_MANIFEST_MEDIA_TYPE,
  PACK_MEDIA_TYPE,
  PACKING,
} from './format.js';
import { restoreEntry } from './restore.js';

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const ALL = ['dist/**'];

let root: string;
let seq = 0;
beforeAll(async () => {
  root = await tempDir('tc-v2-hostile-');
});
afterAll(async () => {
  await removeDir(root);
});

/** A config chunk as written (possibly hostile: any field may be anything). */
type RawChunk = Record<string, unknown>;

/** What {@link pushV2} writes: packs as layers, a config listing `chunks`, and the documents' types. */
interface V2Spec {
  packs: readonly Uint8Array[];
  chunks: readonly RawChunk[];
  /** The config's `formatVersion`. @default 2 */
  configVersion?: number;
  /** The manifest's `artifactType`. @default ENTRY_ARTIFACT_TYPE_V2 */
  artifactType?: string;
  /** The config descriptor's media type. @default ENTRY_CONFIG_MEDIA_TYPE_V2 */
  configMediaType?: string;
  /** Every layer's media type. @default PACK_MEDIA_TYPE */
  layerMediaType?: string;
  /** The config's `size`. @default the sum of the chunks' sizes */
  size?: number;
  /** The config has no `packing` section. */
  noPacking?: boolean;
  /** Replaces stored pack bytes after the push (the store then holds other bytes than the manifest says). */
  stored?: ReadonlyArray<Uint8Array | undefined>;
}

/** Pushes `spec` to `store` under `tag`: the packs, the config, then the tagged manifest. */
async function pushV2(store: MemoryStore, tag: string, spec: V2Spec): Promise<void> {
  const layers: Descriptor[] = [];
  for (const pack of spec.packs) {
    const d = { mediaType: spec.layerMediaType ?? PACK_MEDIA_TYPE, digest: sha(pack), size: pack.byteLength };
    await store.pushBlob(d, pack);
    layers.push(d);
  }
  let size = 0;
  for (const c of spec.chunks) size += typeof c.size === 'number' ? c.size : 0;
  const configDoc = {
    formatVersion: spec.configVersion ?? 2,
    task: 'hostile',
    key: tag,
    created: new Date().toISOString(),
    producer: { name: 'hand', version: '0' },
    files: 3,
    size: spec.size ?? size,
    archive: { format: 'tar', mtimes: 'zero' },
    chunking: {
      algorithm: 'fastcdc2020',
      avgSize: 1048576,
      minSize: 262144,
      maxSize: 4194304,
      normalization: 2,
      seed: 0,
    },
    compression: { algorithm: 'zstd', level: 3 },
    ...(spec.noPacking ? {} : { packing: { ...PACKING } }),
    chunks: spec.chunks,
    sources: [],
  };
  const config = Buffer.from(JSON.stringify(configDoc));
  const configDesc: Descriptor = {
    mediaType: spec.configMediaType ?? ENTRY_CONFIG_MEDIA_TYPE_V2,
    digest: sha(config),
    size: config.byteLength,
  };
  await store.pushBlob(configDesc, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      artifactType: spec.artifactType ?? ENTRY_ARTIFACT_TYPE_V2,
      config: configDesc,
      layers,
    }),
  );
  await store.pushManifest(manifest, OCI_MANIFEST_MEDIA_TYPE, { tag });
  for (const [i, bytes] of (spec.stored ?? []).entries())
    if (bytes !== undefined) store.corruptBlob((layers[i] as Descriptor).digest, bytes);
}

const compress = (b: Uint8Array) => getZstdCodec('auto').compress(b, 3);

/** The outputs of the well-formed entry, and its tar cut by hand into three chunks. */
const A_TXT = 'alpha\n'.repeat(2000);
const B_BIN = seededBytes(40 * 1024, 2101);
const C_TXT = 'gamma';
/** A regular file of binary content (test/hostile.ts's `file` takes a string). */
const binFile = (name: string, data: Buffer): HostileEntry => ({ ...file(name), data });
async function material() {
  const raw = await archive([
    dir('dist'),
    file('dist/a.txt', A_TXT),
    binFile('dist/b.bin', B_BIN),
    file('dist/c.txt', C_TXT),
  ]);
  // Cut anywhere: a reader concatenates the chunks into the archive, it does not cut them.
  const cuts = [0, 8192, 30_000, raw.byteLength];
  const data = cuts.slice(1).map((end, i) => raw.subarray(cuts[i], end));
  const frames = await Promise.all(data.map(compress));
  return { raw, data, frames };
}
type Material = Awaited<ReturnType<typeof material>>;
let m: Material;
beforeAll(async () => {
  m = await material();
});

const chunk = (data: Uint8Array, layer: unknown, offset: unknown, length: unknown): RawChunk => ({
  size: data.byteLength,
  digest: sha(data),
  layer,
  offset,
  length,
});
const cat = (...parts: Uint8Array[]) => Buffer.concat(parts);

/** The well-formed entry: pack 0 holds frames 0 and 1, pack 1 holds frame 2. */
function valid(): { packs: Uint8Array[]; chunks: RawChunk[] } {
  const [f0, f1, f2] = [0, 1, 2].map((i) => m.frames[i] as Uint8Array) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const [d0, d1, d2] = [0, 1, 2].map((i) => m.data[i] as Uint8Array) as [Uint8Array, Uint8Array, Uint8Array];
  return {
    packs: [cat(f0, f1), cat(f2)],
    chunks: [
      chunk(d0, 0, 0, f0.byteLength),
      chunk(d1, 0, f0.byteLength, f1.byteLength),
      chunk(d2, 1, 0, f2.byteLength),
    ],
  };
}

/** A task directory holding outputs the hostile restore must leave exactly as they are. */
async function outputs(): Promise<{ dst: string; before: string }> {
  const dst = join(root, `dst-${++seq}`);
  await mkdir(dst, { recursive: true });
  await writeTree(dst, { 'dist/a.txt': 'previous', 'dist/keep.txt': 'kept' });
  return { dst, before: await treeHash(dst) };
}

// Both restore paths: on the calling thread (the entry is below `inlineBelow`) and through the
// codec and extract workers.
const PATHS = [
  ['inline', {}],
  ['workers', { inlineBelow: 0 }],
] as const;

describe.each(PATHS)('format v2 hand-built entries (%s restore)', (_path, pathOptions) => {
  const restore = (store: MemoryStore, dst: string, tag: string) =>
    restoreEntry(store, { dir: dst, generates: ALL, tag, stateDir: false, ...pathOptions });

  it('the well-formed hand-built entry restores byte-identical (the baseline every case breaks)', async () => {
    const store = createMemoryStore();
    await pushV2(store, 'ok', valid());
    const { dst } = await outputs();
    const r = await restore(store, dst, 'ok');
    expect(r?.chunksFetched).toBe(3);
    expect(await readFile(join(dst, 'dist/a.txt'), 'utf8')).toBe(A_TXT);
    expect(await readFile(join(dst, 'dist/b.bin'))).toEqual(B_BIN);
    expect(await readFile(join(dst, 'dist/c.txt'), 'utf8')).toBe(C_TXT);
    expect(r?.removed).toBe(1); // dist/keep.txt
  });

  it('chunks repeated in the stream (the same frame referenced twice in a row and once more later) restore', async () => {
    const x = seededBytes(64 * 1024, 2201);
    const y = seededBytes(32 * 1024, 2202);
    const content = cat(x, x, y, x);
    const raw = await archive([dir('dist'), binFile('dist/r.bin', content)]);
    // [dir header][file header] x x y x [padding + end blocks]
    const head = raw.subarray(0, 1024);
    const tail = raw.subarray(1024 + content.byteLength);
    const [fh, fx, fy, ft] = (await Promise.all([head, x, y, tail].map(compress))) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    const store = createMemoryStore();
    let at = 0;
    const place = (f: Uint8Array) => {
      const o = at;
      at += f.byteLength;
      return o;
    };
    const [oh, ox, oy] = [place(fh), place(fx), place(fy)];
    const ot = place(ft);
    await pushV2(store, 'repeat', {
      packs: [cat(fh, fx, fy, ft)],
      chunks: [
        chunk(head, 0, oh, fh.byteLength),
        chunk(x, 0, ox, fx.byteLength),
        chunk(x, 0, ox, fx.byteLength),
        chunk(y, 0, oy, fy.byteLength),
        chunk(x, 0, ox, fx.byteLength),
        chunk(tail, 0, ot, ft.byteLength),
      ],
    });
    const { dst } = await outputs();
    const r = await restore(store, dst, 'repeat');
    expect(r?.chunksFetched).toBe(6);
    expect(await readFile(join(dst, 'dist/r.bin'))).toEqual(content);
    expect(await readdir(join(dst, 'dist'))).toEqual(['r.bin']);
  });

  /**
   * Each case: what it changes in the well-formed entry, the error class, and a pattern of the
   * message naming the rule that must fire (so that an unrelated failure does not pass the case).
   */
  interface Case {
    label: string;
    build(): Promise<V2Spec> | V2Spec;
    error: typeof EntryCorruptError | typeof EntryTooLargeError;
    message: RegExp;
  }
  const withChunk = (i: number, patch: RawChunk | ((c: RawChunk) => RawChunk)): V2Spec => {
    const v = valid();
    const c = v.chunks[i] as RawChunk;
    v.chunks[i] = typeof patch === 'function' ? patch(c) : { ...c, ...patch };
    return v;
  };
  const without = (i: number, field: string): V2Spec =>
    withChunk(i, (c) => {
      const { [field]: _dropped, ...rest } = c;
      return rest;
    });
  const f = (i: number) => m.frames[i] as Uint8Array;
  const d = (i: number) => m.data[i] as Uint8Array;

  const cases: Case[] = [
    {
      label: 'a frame past its layer’s end',
      build: () => withChunk(2, { length: f(2).byteLength + 1 }),
      error: EntryCorruptError,
      message: /ends past layer 1/,
    },
    {
      label: 'a frame starting past its layer’s end',
      build: () => withChunk(2, { offset: f(2).byteLength }),
      error: EntryCorruptError,
      message: /ends past layer 1/,
    },
    {
      label: 'overlapping frames (a frame starting one byte before the previous one ends)',
      build: () => withChunk(1, { offset: f(0).byteLength - 1, length: f(1).byteLength }),
      error: EntryCorruptError,
      message: /overlap/,
    },
    {
      label: 'two different chunks naming the same frame',
      build: () => withChunk(1, { offset: 0, length: f(0).byteLength }),
      error: EntryCorruptError,
      message: /overlap/,
    },
    {
      label: 'a layer no chunk references',
      build: () => {
        const v = valid();
        return { ...v, packs: [...v.packs, cat(f(2), f(0))] };
      },
      error: EntryCorruptError,
      message: /layer 2 holds no chunk/,
    },
    {
      label: 'a chunk naming a layer index out of range',
      build: () => withChunk(2, { layer: 2 }),
      error: EntryCorruptError,
      message: /names layer 2; the manifest has 2/,
    },
    {
      label: 'a chunk naming a negative layer',
      build: () => withChunk(2, { layer: -1 }),
      error: EntryCorruptError,
      message: /names layer -1/,
    },
    {
      label: 'a chunk naming a non-integer layer',
      build: () => withChunk(2, { layer: 0.5 }),
      error: EntryCorruptError,
      message: /names layer 0\.5/,
    },
    {
      label: 'a chunk naming its layer as a string',
      build: () => withChunk(2, { layer: '1' }),
      error: EntryCorruptError,
      message: /names layer "1"/,
    },
    {
      label: 'a chunk without a layer',
      build: () => without(2, 'layer'),
      error: EntryCorruptError,
      message: /names layer undefined/,
    },
    {
      label: 'a chunk without an offset',
      build: () => without(1, 'offset'),
      error: EntryCorruptError,
      message: /no valid frame offset and length/,
    },
    {
      label: 'a chunk without a length',
      build: () => without(1, 'length'),
      error: EntryCorruptError,
      message: /no valid frame offset and length/,
    },
    {
      label: 'a negative offset',
      build: () => withChunk(0, { offset: -1 }),
      error: EntryCorruptError,
      message: /no valid frame offset and length/,
    },
    {
      label: 'a negative length',
      build: () => withChunk(2, { length: -5 }),
      error: EntryCorruptError,
      message: /no valid frame offset and length/,
    },
    {
      label: 'a zero length',
      build: () => withChunk(2, { length: 0 }),
      error: EntryCorruptError,
      message: /no valid frame offset and length/,
    },
    {
      label: 'a non-integer offset',
      build: () => withChunk(1, { offset: f(0).byteLength + 0.5 }),
      error: EntryCorruptError,
      message: /no valid frame offset and length/,
    },
    {
      label: 'a frame longer than compressBound(size) (inside its layer: the pack is padded)',
      build: () => {
        const v = valid();
        const bound = compressBound(d(2).byteLength);
        // Unreferenced bytes after a frame are allowed (§11.2): the layer holds the long frame.
        v.packs[1] = cat(f(2), Buffer.alloc(bound + 1 - f(2).byteLength));
        v.chunks[2] = { ...(v.chunks[2] as RawChunk), length: bound + 1 };
        return v;
      },
      error: EntryCorruptError,
      message: /frame is too large for/,
    },
    {
      label: 'a config saying formatVersion 1 under a v2 manifest',
      build: () => ({ ...valid(), configVersion: 1 }),
      error: EntryCorruptError,
      message: /config says format version 1, its manifest version 2/,
    },
    {
      label: 'a config saying formatVersion 2 under a v1 manifest (v1 config media type, v1 chunk layers)',
      // One chunk, one layer: a v1 manifest the v2 config is otherwise consistent with.
      build: () => ({
        packs: [f(0)],
        chunks: [chunk(d(0), 0, 0, f(0).byteLength)],
        artifactType: ENTRY_ARTIFACT_TYPE,
        configMediaType: ENTRY_CONFIG_MEDIA_TYPE,
        layerMediaType: CHUNK_MEDIA_TYPE,
      }),
      error: EntryCorruptError,
      message: /config says format version 2, its manifest version 1/,
    },
    {
      label: 'a v2 manifest naming the v1 config media type',
      build: () => ({ ...valid(), configMediaType: ENTRY_CONFIG_MEDIA_TYPE }),
      error: EntryCorruptError,
      message: /manifest config has media type/,
    },
    {
      label: 'a v2 manifest whose layers have the v1 chunk media type',
      build: () => ({ ...valid(), layerMediaType: CHUNK_MEDIA_TYPE }),
      error: EntryCorruptError,
      message: /layer 0 has media type "application\/vnd\.task-cache\.chunk\.v1\+zstd"/,
    },
    {
      label: 'a v1 manifest whose layers have the v2 pack media type',
      build: () => ({
        packs: m.frames,
        chunks: m.data.map((x) => ({ size: x.byteLength, digest: sha(x) })),
        configVersion: 1,
        artifactType: ENTRY_ARTIFACT_TYPE,
        configMediaType: ENTRY_CONFIG_MEDIA_TYPE,
        noPacking: true,
      }),
      error: EntryCorruptError,
      message: /layer 0 has media type "application\/vnd\.task-cache\.pack\.v2\+zstd"/,
    },
    {
      label: 'a v2 config without a packing section',
      build: () => ({ ...valid(), noPacking: true }),
      error: EntryCorruptError,
      message: /no valid packing section/,
    },
    {
      label: 'a frame whose bytes decompress to a different digest (same size)',
      build: async () => {
        const other = Buffer.from(d(1));
        other[100] = (other[100] as number) ^ 0xff;
        const g1 = await compress(other);
        const v = valid();
        v.packs[0] = cat(f(0), g1);
        v.chunks[1] = chunk(d(1), 0, f(0).byteLength, g1.byteLength);
        return v;
      },
      error: EntryCorruptError,
      message: /chunk 1 has uncompressed digest/,
    },
    {
      label:
        'a valid frame of the right size whose pack bytes belong to another chunk (an unreferenced frame in the pack)',
      build: async () => {
        // Pack 0 holds f0, f1 and a frame of another chunk of the same size as chunk 1; chunk 1
        // points at that one (valid zstd, the right size, another chunk's digest); f1 is skipped.
        const stranger = seededBytes(d(1).byteLength, 2301);
        const g = await compress(stranger);
        const v = valid();
        v.packs[0] = cat(f(0), f(1), g);
        v.chunks[1] = chunk(d(1), 0, f(0).byteLength + f(1).byteLength, g.byteLength);
        return v;
      },
      error: EntryCorruptError,
      message: /chunk 1 has uncompressed digest/,
    },
    {
      label: 'two frames of one pack swapped (each valid zstd of the other chunk, same sizes)',
      build: async () => {
        // Two incompressible chunks of one size compress to frames of one length: in the pack
        // they are swapped, so every (offset, length) is a whole valid frame of the right size
        // whose bytes are the other chunk's.
        const p = seededBytes(16 * 1024, 2501);
        const q = seededBytes(16 * 1024, 2502);
        const raw = await archive([dir('dist'), binFile('dist/pq.bin', cat(p, q))]);
        const head = raw.subarray(0, 1024);
        const tail = raw.subarray(1024 + 32 * 1024);
        const [fh, fp, fq, ft] = (await Promise.all([head, p, q, tail].map(compress))) as Uint8Array[] as [
          Uint8Array,
          Uint8Array,
          Uint8Array,
          Uint8Array,
        ];
        expect(fp.byteLength).toBe(fq.byteLength);
        const n = fp.byteLength;
        const h = fh.byteLength;
        return {
          packs: [cat(fh, fq, fp, ft)],
          chunks: [
            chunk(head, 0, 0, h),
            chunk(p, 0, h, n),
            chunk(q, 0, h + n, n),
            chunk(tail, 0, h + 2 * n, ft.byteLength),
          ],
        };
      },
      error: EntryCorruptError,
      message: /chunk 1 has uncompressed digest/,
    },
    {
      label: 'a frame cut short (its length one byte less, the rest of the pack unreferenced)',
      build: () => withChunk(1, { length: f(1).byteLength - 1 }),
      error: EntryCorruptError,
      message: /chunk 1|zstd/,
    },
    {
      label: 'a frame that decompresses past its chunk’s declared size',
      build: async () => {
        // The frame holds chunk 2 plus 1000 bytes; the config declares chunk 2 as it is.
        const longer = await compress(cat(d(2), Buffer.alloc(1000, 7)));
        const v = valid();
        v.packs[1] = longer;
        v.chunks[2] = chunk(d(2), 1, 0, longer.byteLength);
        return v;
      },
      error: EntryTooLargeError,
      message: /past its declared size|above|declares/,
    },
    {
      label: 'a frame that is not zstd at all',
      build: () => {
        const v = valid();
        v.packs[1] = Buffer.from(seededBytes(f(2).byteLength, 2401));
        return v;
      },
      error: EntryCorruptError,
      message: /zstd|chunk 2/,
    },
    {
      label: 'a pack the store holds truncated (a run of the whole pack)',
      build: () => {
        const v = valid();
        return { ...v, stored: [undefined, (v.packs[1] as Uint8Array).subarray(0, f(2).byteLength - 10)] };
      },
      error: EntryCorruptError,
      message: /failed verification|ended after|size/,
    },
    {
      label: 'a pack the store holds truncated inside a ranged run',
      build: () => {
        const v = valid();
        // Pack 0 also holds an unreferenced frame after f0 and f1: their run is a Range.
        v.packs[0] = cat(f(0), f(1), f(2));
        return { ...v, stored: [(v.packs[0] as Uint8Array).subarray(0, f(0).byteLength + 10)] };
      },
      error: EntryCorruptError,
      message: /failed verification|ended after|size/,
    },
    {
      label: 'chunk sizes that do not add up to the config size',
      build: () => ({ ...valid(), size: m.raw.byteLength + 1 }),
      error: EntryCorruptError,
      message: /add up to/,
    },
  ];

  it.each(cases)('refuses $label; the outputs stay', async ({ build, error, message }) => {
    const store = createMemoryStore();
    const tag = `h${++seq}`;
    await pushV2(store, tag, await build());
    const { dst, before } = await outputs();
    const err = await restore(store, dst, tag).then(
      () => new Error('restored'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(error);
    expect((err as Error).message).toMatch(message);
    expect((err as { code: string }).code).toBe(
      error === EntryTooLargeError ? 'CACHE_ERR_ENTRY_TOO_LARGE' : 'CACHE_ERR_ENTRY_CORRUPT',
    );
    expect(await treeHash(dst)).toBe(before);
    // No staging directory left behind either (treeHash skips them).
    expect(await readdir(dst)).toEqual(['dist']);
  });

  // Regression: a version 1 config is validated as version 1 (chunk i is layer i), but the
  // reader (frames.ts framesOf) and the base of a save (internal/base.ts) took any chunk carrying
  // `layer`/`offset`/`length` as a frame — never checked: a layer out of range was a TypeError, a
  // frame past its layer the store's InvalidOptionError, neither an entry error.
  const v1WithFrames = (extra: (frames: readonly Uint8Array[]) => RawChunk[]): V2Spec => ({
    packs: m.frames,
    chunks: extra(m.frames),
    configVersion: 1,
    artifactType: ENTRY_ARTIFACT_TYPE,
    configMediaType: ENTRY_CONFIG_MEDIA_TYPE,
    layerMediaType: CHUNK_MEDIA_TYPE,
    noPacking: true,
  });

  it('a version 1 entry whose config chunks carry a version 2 layer out of range is a typed error; the outputs stay', async () => {
    const store = createMemoryStore();
    await pushV2(
      store,
      'v1-layer',
      v1WithFrames((frames) =>
        m.data.map((x, i) => ({
          size: x.byteLength,
          digest: sha(x),
          ...(i === 2 ? { layer: 7, offset: 0, length: (frames[2] as Uint8Array).byteLength } : {}),
        })),
      ),
    );
    const { dst, before } = await outputs();
    const err = await restore(store, dst, 'v1-layer').then(
      () => new Error('restored'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EntryCorruptError);
    expect((err as Error).message).toMatch(/chunk 2 names a frame/);
    expect(await treeHash(dst)).toBe(before);
  });

  it('a version 1 entry whose config chunks carry a version 2 frame past its layer is a typed error; the outputs stay', async () => {
    const store = createMemoryStore();
    await pushV2(
      store,
      'v1-range',
      v1WithFrames((frames) =>
        m.data.map((x, i) => ({
          size: x.byteLength,
          digest: sha(x),
          ...(i === 2 ? { layer: 2, offset: 10, length: (frames[2] as Uint8Array).byteLength } : {}),
        })),
      ),
    );
    const { dst, before } = await outputs();
    const err = await restore(store, dst, 'v1-range').then(
      () => new Error('restored'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EntryCorruptError);
    expect((err as Error).message).toMatch(/chunk 2 names a frame/);
    expect(await treeHash(dst)).toBe(before);
  });
});
