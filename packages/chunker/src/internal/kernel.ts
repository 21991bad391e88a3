import { ChunkerWasmUnavailableError } from '../errors.js';
import { GEAR } from './gear.js';
import { KERNEL_WASM_BASE64 } from './kernel-wasm.js';

/** Address of the data block in the kernel's memory (below it: GEAR, GEAR_SHIFTED). */
export const DATA_BASE = 4096;
/**
 * Size of the data block copied into the kernel per scan. NOTE: small enough to stay in L2 between the
 * copy and the scan, large enough that the per-call overhead vanishes.
 */
export const BLOCK_SIZE = 256 * 1024;
const PAGE = 65536;

interface KernelExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  hash: { value: bigint };
  pos: { value: number };
  configure(maskSmall: bigint, maskLarge: bigint): void;
  reset(hash: bigint): void;
  scan(p: number, switchAt: number, stop: number): number;
}

// NOTE: the project compiles without the DOM lib, which is where TypeScript declares WebAssembly.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: unknown };
}

let compiled: object | undefined;
const tableCache = new Map<bigint, Uint8Array>();

/** GEAR ^ seed followed by GEAR_SHIFTED ^ (seed << 1), little endian, as the kernel expects. */
function tables(seed: bigint): Uint8Array {
  let t = tableCache.get(seed);
  if (t === undefined) {
    const words = new BigUint64Array(512);
    const seedShifted = BigInt.asUintN(64, seed << 1n);
    for (let i = 0; i < 256; i++) {
      const g = GEAR[i]!;
      words[i] = g ^ seed;
      words[256 + i] = BigInt.asUintN(64, g << 1n) ^ seedShifted;
    }
    t = new Uint8Array(words.buffer);
    // NOTE: a tiny bounded cache: seeds are per deployment, not per call.
    if (tableCache.size >= 8) tableCache.clear();
    tableCache.set(seed, t);
  }
  return t;
}

/** One instance of the scan kernel with its own memory; not shareable between concurrent scans. */
export class Kernel {
  readonly exports: KernelExports;
  /** View of the data block (valid until the memory grows; it never does after construction). */
  readonly block: Uint8Array;
  private seed: bigint | undefined;

  constructor() {
    const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
    if (wasm === undefined) {
      throw new ChunkerWasmUnavailableError(
        'WebAssembly is not available in this runtime (is Node running with --jitless?); the chunker needs it',
      );
    }
    try {
      compiled ??= new wasm.Module(Buffer.from(KERNEL_WASM_BASE64, 'base64'));
      this.exports = new wasm.Instance(compiled).exports as KernelExports;
    } catch (cause) {
      throw new ChunkerWasmUnavailableError('cannot instantiate the WebAssembly scan kernel', { cause });
    }
    const need = Math.ceil((DATA_BASE + BLOCK_SIZE) / PAGE);
    const have = this.exports.memory.buffer.byteLength / PAGE;
    if (need > have) this.exports.memory.grow(need - have);
    this.block = new Uint8Array(this.exports.memory.buffer, DATA_BASE, BLOCK_SIZE);
  }

  /** Loads the seeded tables and the masks; resets the hash. */
  configure(seed: bigint, maskSmall: bigint, maskLarge: bigint): void {
    if (this.seed !== seed) {
      new Uint8Array(this.exports.memory.buffer, 0, DATA_BASE).set(tables(seed));
      this.seed = seed;
    }
    this.exports.configure(maskSmall, maskLarge);
    this.exports.reset(0n);
  }
}

const pool: Kernel[] = [];

/** Takes a kernel from the pool (or makes one); give it back with {@link releaseKernel}. */
export function acquireKernel(): Kernel {
  return pool.pop() ?? new Kernel();
}

/** Returns a kernel to the pool. */
export function releaseKernel(kernel: Kernel): void {
  if (pool.length < 4) pool.push(kernel);
}
