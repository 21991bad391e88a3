import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../errors.js';
import { createMemoryStore } from '../store/memory.js';
import { restoreEntry } from './restore.js';
import { saveEntry } from './save.js';

const base = { dir: '.', generates: ['dist/**'], tag: 't', task: 't', key: 'k' };

describe('entry options are validated up front with the field named', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['dir', { dir: '' }],
    ['dir', { dir: '/definitely/not/here' }],
    ['generates', { generates: [] }],
    ['generates', { generates: ['../out/**'] }],
    ['generates', { generates: ['/abs/**'] }],
    ['tag', { tag: 'has space' }],
    ['tag', { tag: 'x'.repeat(129) }],
    ['compressionLevel', { compressionLevel: 0 }],
    ['avgChunkSize', { avgChunkSize: 1000 }],
    ['layerCap', { layerCap: 0 }],
    ['concurrency', { concurrency: 0 }],
    ['codec', { codec: 'gzip' }],
  ];
  for (const [field, patch] of cases) {
    it(`saveEntry: ${field} ${JSON.stringify(patch).slice(0, 60)}`, async () => {
      const err = await saveEntry(createMemoryStore(), { ...base, ...patch } as never).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect(err.field).toBe(field);
      expect(err.message).toContain(field);
    });
  }
  it('restoreEntry: tag and maxEntrySize', async () => {
    const store = createMemoryStore();
    const a = await restoreEntry(store, { dir: '.', generates: ['dist/**'], tag: '-bad' }).catch((e) => e);
    expect(a.field).toBe('tag');
    const b = await restoreEntry(store, {
      dir: '.',
      generates: ['dist/**'],
      tag: 't',
      maxEntrySize: -1,
    }).catch((e) => e);
    expect(b.field).toBe('maxEntrySize');
  });
});
