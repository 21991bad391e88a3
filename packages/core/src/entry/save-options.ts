/** The options of `saveEntry`, validated up front (every mistake names its field). */
import { InvalidOptionError } from '../errors.js';
import { defaultStateDir } from '../internal/base.js';
import { chunkParams } from '../internal/chunk.js';
import {
  checkBoolean,
  checkFunction,
  checkGenerates,
  checkInt,
  checkOneOf,
  checkProtect,
  checkSize,
  checkString,
  checkTag,
  outputSelection,
  SHARED_OPTIONS,
} from '../internal/validate.js';
import { getZstdCodec, ZSTD_CODEC_MAX_CHUNK } from '../internal/zstd.js';
import { ENTRY_FORMAT_VERSION, type EntryFormatVersion } from './format.js';
import type { SaveEntryOptions } from './types.js';

/** {@link SaveEntryOptions} with every default filled in. */
export interface SaveSettings {
  dir: string;
  /** The output selection: `generates`, then the protected globs negated (`outputSelection`). */
  generates: readonly string[];
  tag: string;
  task: string;
  key: string;
  sources: Array<{ path: string; digest: string }>;
  inputs: SaveEntryOptions['inputs'];
  buildDurationMs: number | undefined;
  sign: SaveEntryOptions['sign'];
  keepMtimes: boolean;
  level: number;
  avgChunkSize: number;
  layerCap: number;
  maxEntrySize: number;
  concurrency: number;
  codec: 'auto' | 'node' | 'zstd-codec';
  mountFrom: string[];
  existenceChecks: 'always' | 'adaptive';
  base: string | false | undefined;
  stateDir: string | false;
  pointer: boolean;
  format: 'auto' | 'standard' | 'compat';
  inlineBelow: number;
  inlineFilesBelow: number;
  formatVersion: EntryFormatVersion;
}

/**
 * Defaults of `inlineBelow` and `inlineFilesBelow` for a save: the restore's threshold (entry/
 * restore-inline.ts, measured in docs/benchmarks.md "Small tasks"), and a few hundred entries —
 * the small project of `bench:small` (200 files, 2 MB) saves inline.
 */
export const DEFAULT_SAVE_INLINE_BELOW = 4 * 1024 * 1024;
export const DEFAULT_SAVE_INLINE_FILES_BELOW = 500;

/** Validates `o` and fills in the defaults. */
export function saveSettings(o: SaveEntryOptions): SaveSettings {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('options', 'must be an object');
  const avg = checkInt('avgChunkSize', o.avgChunkSize, 1024 * 1024, 256, 8 * 1024 * 1024);
  if ((avg & (avg - 1)) !== 0)
    throw new InvalidOptionError('avgChunkSize', `must be a power of two, got ${avg}`);
  const codec = SHARED_OPTIONS.codec('codec', o.codec);
  if (getZstdCodec(codec).name === 'zstd-codec' && chunkParams(avg).maxSize > ZSTD_CODEC_MAX_CHUNK) {
    throw new InvalidOptionError(
      'avgChunkSize',
      `at most ${ZSTD_CODEC_MAX_CHUNK / 4} with the zstd-codec codec (chunks reach 4 × the average, and zstd-codec holds at most ${ZSTD_CODEC_MAX_CHUNK} bytes); larger chunks need node:zlib's zstd (Node >= 22.15), got ${avg}`,
    );
  }
  return {
    dir: checkString('dir', o.dir),
    generates: outputSelection(
      checkGenerates(o.generates, {
        allowBroad: checkBoolean('allowBroadGenerates', o.allowBroadGenerates, false),
      }),
      checkProtect(o.protect),
    ),
    tag: checkTag(o.tag),
    task: checkString('task', o.task),
    key: checkString('key', o.key),
    sources: (o.sources ?? []).map((s) => ({ path: s.path, digest: s.digest })),
    inputs: o.inputs,
    buildDurationMs:
      o.buildDurationMs === undefined
        ? undefined
        : Math.round(checkSize('buildDurationMs', o.buildDurationMs, 0)),
    sign: checkFunction<NonNullable<SaveEntryOptions['sign']>>('sign', o.sign),
    keepMtimes: checkBoolean('keepMtimes', o.keepMtimes, false),
    level: SHARED_OPTIONS.compressionLevel('compressionLevel', o.compressionLevel),
    avgChunkSize: avg,
    layerCap: checkInt('layerCap', o.layerCap, 500, 1, 10_000),
    maxEntrySize: SHARED_OPTIONS.maxEntrySize('maxEntrySize', o.maxEntrySize, Number.POSITIVE_INFINITY),
    concurrency: SHARED_OPTIONS.concurrency('concurrency', o.concurrency),
    codec,
    mountFrom: o.mountFrom ?? [],
    existenceChecks: checkOneOf(
      'existenceChecks',
      o.existenceChecks,
      ['always', 'adaptive'] as const,
      'adaptive',
    ),
    base: o.base === undefined || o.base === false ? o.base : checkTag(o.base, 'base'),
    stateDir: SHARED_OPTIONS.stateDir('stateDir', o.stateDir) ?? defaultStateDir(),
    pointer: checkBoolean('pointer', o.pointer, true),
    format: checkOneOf('format', o.format, ['auto', 'standard', 'compat'] as const, 'auto'),
    inlineBelow: checkSize('inlineBelow', o.inlineBelow, DEFAULT_SAVE_INLINE_BELOW),
    formatVersion: checkInt(
      'formatVersion',
      o.formatVersion,
      ENTRY_FORMAT_VERSION,
      1,
      2,
    ) as EntryFormatVersion,
    inlineFilesBelow: checkInt(
      'inlineFilesBelow',
      o.inlineFilesBelow,
      DEFAULT_SAVE_INLINE_FILES_BELOW,
      0,
      1_000_000,
    ),
  };
}
