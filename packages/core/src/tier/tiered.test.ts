import { createHash } from 'node:crypto';
import type { BlobRange, Descriptor, FetchBlobOptions, OciStore } from '@task-cache/oci';
import { describe, expect, it } from 'vitest';
import { countingStore } from '../store/counting.js';
import { createMemoryStore, type MemoryStore } from '../store/memory.js';
import { tieredStore } from './tiered.js';

const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
const blob: Descriptor = {
  mediaType: 'application/octet-stream',
  digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
  size: bytes.length,
};
async function readAll(it: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const p of it) n += p.length;
  return n;
}
async function* pieces(): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.length; i += 65_536) yield bytes.subarray(i, i + 65_536);
}

describe('tieredStore', () => {
  it('tees a remote blob into the local tier while it is read, then reads it locally', async () => {
    const local = countingStore(createMemoryStore());
    const remote = countingStore(createMemoryStore());
    await remote.pushBlob(blob, bytes);
    remote.resetCounts();
    const t = tieredStore(local, remote);
    expect(await readAll(await t.fetchBlob(blob))).toBe(bytes.length);
    expect(remote.counts.fetchBlob).toBe(1);
    expect(await local.blobExists(blob)).toBe(true);
    expect(await readAll(await t.fetchBlob(blob))).toBe(bytes.length);
    expect(remote.counts.fetchBlob).toBe(1);
  });

  it('a local tier refusing the write-through does not stop the read (reported once)', async () => {
    const remote = createMemoryStore();
    await remote.pushBlob(blob, bytes);
    const broken: OciStore = Object.assign(Object.create(createMemoryStore()) as OciStore, {
      pushBlob: () => Promise.reject(new Error('disk full')),
    });
    const trouble: string[] = [];
    const t = tieredStore(broken, remote, { onTrouble: (tier, op) => trouble.push(`${tier} ${op}`) });
    expect(await readAll(await t.fetchBlob(blob))).toBe(bytes.length);
    expect(trouble).toEqual(['local pushBlob']);
  });

  it('pushes a read-once body to both tiers; a remote refusing it is reported, the local push stands', async () => {
    const local = createMemoryStore();
    const remote = createMemoryStore();
    const t = tieredStore(local, remote);
    await t.pushBlob(blob, pieces());
    expect(await local.blobExists(blob)).toBe(true);
    expect(await remote.blobExists(blob)).toBe(true);

    const local2 = createMemoryStore();
    const down: OciStore = Object.assign(Object.create(createMemoryStore()) as OciStore, {
      pushBlob: () => Promise.reject(new Error('503')),
    });
    const trouble: string[] = [];
    const t2 = tieredStore(local2, down, { onTrouble: (tier, op) => trouble.push(`${tier} ${op}`) });
    await t2.pushBlob(blob, pieces());
    expect(await local2.blobExists(blob)).toBe(true);
    expect(trouble).toEqual(['remote pushBlob']);
  });

  it('honours the modes: remote read-only is never written, local off is never read', async () => {
    const local = countingStore(createMemoryStore());
    const remote = countingStore(createMemoryStore());
    const ro = tieredStore(local, remote, { modes: { local: 'rw', remote: 'r' } });
    await ro.pushBlob(blob, bytes);
    expect(remote.counts.pushBlob).toBe(0);
    expect(await local.blobExists(blob)).toBe(true);
    local.resetCounts();
    const off = tieredStore(local, remote, { modes: { local: 'off', remote: 'rw' } });
    await expect(off.fetchBlob(blob)).rejects.toThrow();
    expect(local.counts.fetchBlob).toBe(0);
    expect(local.counts.pushBlob).toBe(0);
  });
});

describe('tieredStore: the remote registry capabilities', () => {
  it('forwards probeCapabilities, observedCapabilities and assumeCapabilities to the remote, and has none without them', async () => {
    const seen: unknown[] = [];
    const remote: OciStore = {
      ...createMemoryStore(),
      probeCapabilities: async () => ({ rangeRequests: true }),
      observedCapabilities: () => ({ monolithicUpload: true }),
      assumeCapabilities: (c) => {
        seen.push(c);
      },
    };
    const tiered = tieredStore(createMemoryStore(), remote, {});
    expect(await tiered.probeCapabilities?.()).toEqual({ rangeRequests: true });
    expect(tiered.observedCapabilities?.()).toEqual({ monolithicUpload: true });
    tiered.assumeCapabilities?.({ minPatchBytes: 5 * 1024 * 1024 });
    expect(seen).toEqual([{ minPatchBytes: 5 * 1024 * 1024 }]);
    const plain = tieredStore(createMemoryStore(), createMemoryStore(), {});
    expect(plain.probeCapabilities).toBeUndefined();
    expect(plain.assumeCapabilities).toBeUndefined();
  });
});

describe('tieredStore: ranged reads (FetchBlobOptions.range)', () => {
  const range: BlobRange = { offset: 70_000, length: 100_000 };
  const want = Buffer.from(bytes.subarray(range.offset, range.offset + range.length));
  const collect = async (source: AsyncIterable<Uint8Array>) => {
    const parts: Uint8Array[] = [];
    for await (const p of source) parts.push(p);
    return Buffer.concat(parts);
  };

  /**
   * A remote holding the blob that records the options of every fetchBlob and hands its bytes
   * out in 64 KiB pieces, counting the bytes its reader pulled.
   */
  function recordingRemote() {
    const inner = createMemoryStore();
    const calls: FetchBlobOptions[] = [];
    const state = { pulled: 0 };
    const store: MemoryStore = Object.assign(Object.create(inner) as MemoryStore, {
      async fetchBlob(d: Descriptor, o?: FetchBlobOptions) {
        calls.push({ ...o });
        const source = await inner.fetchBlob(d, o);
        return (async function* () {
          for await (const p of source)
            for (let i = 0; i < p.byteLength; i += 65_536) {
              const piece = p.subarray(i, i + 65_536);
              state.pulled += piece.byteLength;
              yield piece;
            }
        })();
      },
    });
    return { store, calls, state, ready: inner.pushBlob(blob, bytes) };
  }

  it('a local hit reads the range from the local tier', async () => {
    const local = countingStore(createMemoryStore());
    const remote = countingStore(createMemoryStore());
    await local.pushBlob(blob, bytes);
    const t = tieredStore(local, remote);
    expect((await collect(await t.fetchBlob(blob, { range }))).equals(want)).toBe(true);
    expect(local.counts.fetchBlob).toBe(1);
    expect(remote.counts.fetchBlob).toBe(0);
  });

  it('a local miss reads the whole blob from the remote, hands out the range as it passes and fills the local tier', async () => {
    const local = countingStore(createMemoryStore());
    const remote = recordingRemote();
    await remote.ready;
    const t = tieredStore(local, remote.store);
    const source = await t.fetchBlob(blob, { range });
    const got: Uint8Array[] = [];
    let pulledAtFirstPiece: number | undefined;
    for await (const p of source) {
      pulledAtFirstPiece ??= remote.state.pulled;
      got.push(p);
    }
    expect(Buffer.concat(got).equals(want)).toBe(true);
    // Streamed: the range's first piece came before the rest of the blob was read.
    expect(pulledAtFirstPiece).toBe(2 * 65_536);
    // The whole blob, without a range and without a second hash (the local write verifies it).
    expect(remote.calls).toEqual([{ contentVerified: true }]);
    expect(remote.state.pulled).toBe(bytes.length);
    expect(local.counts.pushBlob).toBe(1);
    expect((await collect(await local.fetchBlob(blob))).equals(Buffer.from(bytes))).toBe(true);
    // The next ranged read is a local hit.
    expect((await collect(await t.fetchBlob(blob, { range: { offset: 0, length: 1 } }))).at(0)).toBe(
      bytes[0],
    );
    expect(remote.calls).toHaveLength(1);
  });

  it('when the local write fails, the remote read stops after the range (reported once)', async () => {
    const remote = recordingRemote();
    await remote.ready;
    const broken: OciStore = Object.assign(Object.create(createMemoryStore()) as OciStore, {
      pushBlob: () => Promise.reject(new Error('disk full')),
    });
    const trouble: string[] = [];
    const t = tieredStore(broken, remote.store, { onTrouble: (tier, op) => trouble.push(`${tier} ${op}`) });
    expect((await collect(await t.fetchBlob(blob, { range }))).equals(want)).toBe(true);
    expect(remote.state.pulled).toBe(3 * 65_536); // the piece holding the range's last byte, no more
    expect(trouble).toEqual(['local pushBlob']);
  });

  it('concurrent ranged reads of a blob being copied ask the remote for their range only: one copy', async () => {
    const local = countingStore(createMemoryStore());
    const remote = recordingRemote();
    await remote.ready;
    const t = tieredStore(local, remote.store);
    const ranges: BlobRange[] = [range, { offset: 200_000, length: 100_000 }, { offset: 299_999, length: 1 }];
    const sources = await Promise.all(ranges.map((r) => t.fetchBlob(blob, { range: r })));
    const got = await Promise.all(sources.map(collect));
    for (const [i, r] of ranges.entries())
      expect(got[i]!.equals(Buffer.from(bytes.subarray(r.offset, r.offset + r.length)))).toBe(true);
    expect(remote.calls).toEqual([{ contentVerified: true }, { range: ranges[1] }, { range: ranges[2] }]);
    expect(local.counts.pushBlob).toBe(1);
    expect(await local.blobExists(blob)).toBe(true);
  });

  it('without a writable local tier the remote is asked for the range only', async () => {
    for (const mode of ['r', 'off'] as const) {
      const local = countingStore(createMemoryStore());
      const remote = recordingRemote();
      await remote.ready;
      const t = tieredStore(local, remote.store, { modes: { local: mode, remote: 'r' } });
      expect((await collect(await t.fetchBlob(blob, { range }))).equals(want), mode).toBe(true);
      expect(remote.calls, mode).toEqual([{ range }]);
      expect(local.counts.pushBlob, mode).toBe(0);
    }
  });

  it('refuses an invalid range before either tier is asked', async () => {
    const local = countingStore(createMemoryStore());
    const remote = countingStore(createMemoryStore());
    const t = tieredStore(local, remote);
    for (const r of [
      { offset: -1, length: 1 },
      { offset: 0, length: 0 },
      { offset: bytes.length, length: 1 },
    ]) {
      await expect(t.fetchBlob(blob, { range: r })).rejects.toMatchObject({
        name: 'InvalidOptionError',
        code: 'OCI_ERR_INVALID_OPTION',
      });
    }
    expect(local.counts.fetchBlob + remote.counts.fetchBlob).toBe(0);
  });
});
