/** Public surface of the image-layout store (re-exported by name from `src/index.ts`). */
export {
  createLayoutStore,
  IMAGE_LAYOUT_VERSION,
  type LayoutGcOptions,
  type LayoutGcResult,
  type LayoutLocker,
  type LayoutPruneOptions,
  type LayoutPruneResult,
  type LayoutStore,
  type LayoutStoreOptions,
  type LayoutUse,
  REF_NAME_ANNOTATION,
} from './store.js';
