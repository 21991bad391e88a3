import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assembleKernel, renderKernelSource } from '../../scripts/build-wasm.js';
import { renderGearSource } from '../../scripts/gen-gear.js';
import { GEAR } from './gear.js';
import { KERNEL_WASM_BASE64 } from './kernel-wasm.js';

const read = (rel: string) => readFileSync(new URL(rel, import.meta.url), 'utf8');

describe('generated sources are up to date', () => {
  it('kernel-wasm.ts is exactly what wabt assembles from kernel.wat (run gen:wasm if not)', async () => {
    const binary = await assembleKernel(read('./kernel.wat'));
    expect(KERNEL_WASM_BASE64).toBe(Buffer.from(binary).toString('base64'));
    expect(read('./kernel-wasm.ts')).toBe(renderKernelSource(binary));
  });

  it('gear.ts is exactly what gen-gear renders from the fixture gear.txt (run gen:gear if not)', () => {
    const txt = read('../../test/fixtures/gear.txt');
    expect(read('./gear.ts')).toBe(renderGearSource(txt));
    expect(GEAR).toHaveLength(256);
    expect(GEAR[0]).toBe(0x3b5d3c7d207e37dcn);
  });
});
