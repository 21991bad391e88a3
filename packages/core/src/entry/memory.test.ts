import { entryConformance } from '../../test/conformance.js';
import { createMemoryStore } from '../store/memory.js';

entryConformance(
  'memory',
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
  { tamper: true },
);
