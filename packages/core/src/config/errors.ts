// NOTE: the error classes of core live in one module (../errors.ts); this path stays for the
// modules that import the configuration errors from here.
export {
  CacheConfigError,
  type CacheConfigErrorCode,
  CacheRunError,
  type CacheRunErrorCode,
} from '../errors.js';
