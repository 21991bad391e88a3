import { afterEach, describe, expect, it, vi } from 'vitest';

// NOTE: the project compiles without the DOM lib, so WebAssembly is untyped here.
const g = globalThis as unknown as { WebAssembly?: Record<string, unknown> };

describe('kernel instantiation', () => {
  const original = g.WebAssembly;
  afterEach(() => {
    g.WebAssembly = original;
    vi.resetModules();
  });

  it('without WebAssembly (e.g. --jitless) chunking throws ChunkerWasmUnavailableError', async () => {
    vi.resetModules();
    const { chunkBuffer, ChunkerWasmUnavailableError } = await import('../index.js');
    delete g.WebAssembly;
    expect(() => chunkBuffer(new Uint8Array(1000), { avgSize: 256 })).toThrow(ChunkerWasmUnavailableError);
    expect(() => chunkBuffer(new Uint8Array(1000), { avgSize: 256 })).toThrow(/--jitless/);
  });

  it('a runtime that refuses the module gives ChunkerWasmUnavailableError with the cause', async () => {
    vi.resetModules();
    const { chunkBuffer, ChunkerWasmUnavailableError } = await import('../index.js');
    const refusal = new Error('CompileError: refused');
    g.WebAssembly = {
      ...original,
      Module: class {
        constructor() {
          throw refusal;
        }
      },
    };
    let caught: unknown;
    try {
      chunkBuffer(new Uint8Array(1000), { avgSize: 256 });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ChunkerWasmUnavailableError);
    expect((caught as Error).cause).toBe(refusal);
  });
});
