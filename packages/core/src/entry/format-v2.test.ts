// Format version 2 (docs/format.md §11): the entry conformance suite with `formatVersion: 2` on
// the memory store, and what version 2 adds — packs, frames referenced across entries, ranges.

import { entryConformance } from '../../test/conformance.js';
import { isolateCacheDir } from '../../test/helpers.js';
import { createMemoryStore } from '../store/memory.js';

isolateCacheDir();

entryConformance(
  'memory (format v2)',
  async () => {
    const store = createMemoryStore();
    return {
      store,
      tamperBlob: async (digest, bytes) => store.corruptBlob(digest, bytes),
      removeBlob: async (digest) => {
        store.deleteBlob(digest);
      },
    };
  },
  { tamper: true, formatVersion: 2 },
);
