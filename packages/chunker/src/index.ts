/**
 * `@task-cache/chunker`: FastCDC 2020 content-defined chunking, conformant with the Bazel Remote
 * Execution API v2 `FastCdc2020Params` and its published test vectors.
 *
 * @see https://github.com/bazelbuild/remote-apis/blob/main/build/bazel/remote/execution/v2/remote_execution.proto
 * @packageDocumentation
 */
export { type Chunk, chunkBuffer, chunkStream } from './chunk.js';
export {
  ChunkerError,
  type ChunkerErrorCode,
  ChunkerInputError,
  ChunkerOptionError,
  type ChunkerOptionName,
  ChunkerWasmUnavailableError,
} from './errors.js';
export { type ChunkOptions, DEFAULT_AVG_SIZE, DEFAULT_NORMALIZATION, MIN_MIN_SIZE } from './options.js';
