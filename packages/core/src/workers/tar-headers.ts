/**
 * tar-stream's own header encoder and decoder (its package exports only the stream API). The pack
 * worker encodes with it, so entries it packs and the streaming packer's are byte-identical and
 * deduplicate with each other; the extract worker decodes with it, so parsing matches the
 * streaming extractor.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** A header as tar-stream encodes it. */
export interface TarHeaderIn {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  type: string;
  linkname?: string;
  uname: string;
  gname: string;
}

/** A header as tar-stream decodes it. */
export interface TarHeaderOut {
  name: string;
  mode: number | null;
  size: number;
  mtime: Date;
  type: string | null;
  linkname: string | null;
}

/** The functions of tar-stream's `headers.js` core uses. */
export interface TarHeaders {
  encode(h: TarHeaderIn): Uint8Array | null;
  encodePax(h: { name: string; linkname?: string }): Uint8Array;
  decode(buf: Uint8Array, enc: string, allowUnknown: boolean): TarHeaderOut | null;
  decodePax(buf: Uint8Array): Record<string, string>;
  decodeLongPath(buf: Uint8Array, enc: string): string;
}

/** tar-stream's `headers.js`, loaded by package name as an installed package would. */
export const tarHeaders: TarHeaders = (() => {
  const require = createRequire(import.meta.url);
  return require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as TarHeaders;
})();
