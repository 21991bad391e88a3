/** Public surface of the image-layout store (re-exported by name from `src/index.ts`). */
export {
  createLayoutStore,
  IMAGE_LAYOUT_VERSION,
  type LayoutGcOptions,
  type LayoutGcResult,
  type LayoutLocker,
  type LayoutStore,
  type LayoutStoreOptions,
  REF_NAME_ANNOTATION,
} from './store.js';
