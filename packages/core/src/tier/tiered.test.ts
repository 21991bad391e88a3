import { createHash } from 'node:crypto';
import type { Descriptor, OciStore } from '@task-cache/oci';
import { describe, expect, it } from 'vitest';
import { countingStore } from '../store/counting.js';
import { createMemoryStore } from '../store/memory.js';
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
