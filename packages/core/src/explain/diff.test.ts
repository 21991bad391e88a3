import { describe, expect, it } from 'vitest';
import type { KeyInputs } from '../key/checksum.js';
import { describeExplanation, diffInputs, type Explanation } from './diff.js';
import { parseRecordedInputs } from './inputs.js';

const D = (c: string) => `sha256:${c.repeat(64)}`;
const base: KeyInputs = {
  sources: [
    { path: 'src/a.ts', digest: D('a'), kind: '-' },
    { path: 'src/b.ts', digest: D('b'), kind: '-' },
  ],
  env: [{ name: 'NODE_ENV', digest: D('1') }],
  tools: [{ name: 'node', version: '20.1.0' }],
  commands: ['tsc'],
  platform: null,
  extra: [],
};

describe('diffInputs', () => {
  it('names nothing for identical inputs', () => {
    expect(diffInputs(base, structuredClone(base))).toEqual([]);
  });

  it('names each kind of change, files first', () => {
    const after: KeyInputs = {
      sources: [
        { path: 'src/a.ts', digest: D('c'), kind: '-' },
        { path: 'src/c.ts', digest: D('c'), kind: '-' },
      ],
      env: [
        { name: 'NODE_ENV', digest: null },
        { name: 'CI', digest: D('2') },
      ],
      tools: [{ name: 'node', version: '22.0.0' }],
      commands: ['tsc', '-b'],
      platform: 'linux-x64',
      extra: ['v2'],
    };
    expect(diffInputs(base, after)).toEqual([
      { input: 'source', change: 'changed', path: 'src/a.ts' },
      { input: 'source', change: 'added', path: 'src/c.ts' },
      { input: 'source', change: 'removed', path: 'src/b.ts' },
      { input: 'env', change: 'changed', name: 'NODE_ENV' },
      { input: 'env', change: 'added', name: 'CI' },
      { input: 'tool', change: 'changed', name: 'node', from: '20.1.0', to: '22.0.0' },
      { input: 'commands', change: 'changed' },
      { input: 'platform', change: 'changed', from: null, to: 'linux-x64' },
      { input: 'extra', change: 'changed' },
    ]);
  });

  it('an executable bit flip is a change of the file', () => {
    const after = structuredClone(base);
    (after.sources[1] as { kind: string }).kind = 'x';
    expect(diffInputs(base, after)).toEqual([{ input: 'source', change: 'changed', path: 'src/b.ts' }]);
  });
});

describe('describeExplanation', () => {
  const e = (changes: Explanation['changes']): Explanation => ({
    task: 'build',
    key: 'k',
    previous: { status: 'found', key: 'p', created: '2026-01-01T00:00:00Z' },
    changes,
  });
  it('names two changes and counts the rest', () => {
    expect(
      describeExplanation(
        e([
          { input: 'source', change: 'changed', path: 'src/app.ts' },
          { input: 'env', change: 'changed', name: 'NODE_ENV' },
          { input: 'source', change: 'added', path: 'x' },
          { input: 'commands', change: 'changed' },
        ]),
      ),
    ).toBe('src/app.ts changed, NODE_ENV changed (2 more)');
    expect(
      describeExplanation(e([{ input: 'tool', change: 'changed', name: 'node', from: '20', to: '22' }])),
    ).toBe('tool node 20 → 22');
  });
  it('says why nothing was compared', () => {
    expect(describeExplanation({ ...e([]), previous: { status: 'none' } })).toBe(
      'no previous entry of this task',
    );
    expect(describeExplanation({ ...e([]), previous: { status: 'expired', key: 'p' } })).toBe(
      'the previous entry expired',
    );
    expect(describeExplanation(e([]))).toBe('no input changed since the previous entry');
  });
});

describe('parseRecordedInputs (untrusted input)', () => {
  it('round-trips a recorded manifest and refuses malformed ones', () => {
    const recorded = { task: 'build', ...base };
    expect(parseRecordedInputs(JSON.parse(JSON.stringify(recorded)))).toEqual(recorded);
    expect(parseRecordedInputs(undefined)).toBeUndefined();
    expect(parseRecordedInputs({ ...recorded, sources: [{ path: 'a', digest: 'md5:x' }] })).toBeUndefined();
    expect(parseRecordedInputs({ ...recorded, env: [{ name: 'X', digest: 42 }] })).toBeUndefined();
    expect(parseRecordedInputs({ ...recorded, platform: 3 })).toBeUndefined();
  });
});
