import { describe, expect, it } from 'vitest';
import { PACKING } from './format.js';
import { layerBudget } from './save-packs.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('layerBudget (docs/format.md §11.4)', () => {
  it('one layer per minSize plus a slack of 8', () => {
    expect(layerBudget(1, PACKING.minSize)).toBe(9);
    expect(layerBudget(GiB, PACKING.minSize)).toBe(64 + 8);
    expect(layerBudget(1e9, PACKING.minSize)).toBe(60 + 8);
  });

  it('the slack stops at 256: an entry of up to 4 GiB keeps at most 256 layers', () => {
    expect(layerBudget(4e9, PACKING.minSize)).toBe(239 + 8);
    expect(layerBudget(4 * GiB - 100 * MiB, PACKING.minSize)).toBe(256);
    expect(layerBudget(4 * GiB, PACKING.minSize)).toBe(256);
    for (let size = 3.5 * GiB; size <= 4 * GiB; size += 7 * MiB)
      expect(layerBudget(size, PACKING.minSize)).toBeLessThanOrEqual(256);
  });

  it('above 4 GiB the budget is one layer per minSize (the index form takes what a registry caps)', () => {
    expect(layerBudget(8 * GiB, PACKING.minSize)).toBe(512);
    // A store that caps blobs lowers minSize: the budget follows it.
    expect(layerBudget(GiB, 4 * MiB)).toBe(256 + 0);
    expect(layerBudget(512 * MiB, 4 * MiB)).toBe(128 + 8);
  });
});
