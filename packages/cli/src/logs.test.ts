import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOG_MAGIC, logPath, recordLog, replayLog } from './logs.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tc-cli-logs-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function sink() {
  const chunks: Buffer[] = [];
  const s = new PassThrough();
  s.on('data', (c: Buffer) => chunks.push(c));
  return { s, text: () => Buffer.concat(chunks).toString() };
}

describe('output log', () => {
  it('records both streams in arrival order and replays them to the right stream', async () => {
    const file = join(dir, logPath('build'));
    const log = await recordLog(file);
    log.write(1, Buffer.from('o1\n'));
    log.write(2, Buffer.from('e1\n'));
    log.write(1, Buffer.from('o2\n'));
    await log.commit();
    expect((await readFile(file)).subarray(0, LOG_MAGIC.length).toString()).toBe(LOG_MAGIC);
    const both = sink();
    const out = sink();
    const err = sink();
    // One sink for both: the order of the records is kept.
    expect(await replayLog(file, both.s, both.s)).toBe(true);
    expect(both.text()).toBe('o1\ne1\no2\n');
    await replayLog(file, out.s, err.s);
    expect([out.text(), err.text()]).toEqual(['o1\no2\n', 'e1\n']);
  });

  it('records at most `limit` bytes, then one truncation note', async () => {
    const file = join(dir, 'x.log');
    const log = await recordLog(file, 10);
    log.write(1, Buffer.from('12345678'));
    log.write(1, Buffer.from('abcdef'));
    log.write(2, Buffer.from('never recorded'));
    await log.commit();
    const out = sink();
    const err = sink();
    await replayLog(file, out.s, err.s);
    expect(out.text()).toBe('12345678ab');
    expect(err.text()).toBe('\n[task-cache: output log truncated at 10 bytes]\n');
  });

  it('discard() leaves no file; a missing or foreign file is not replayed', async () => {
    const file = join(dir, logPath('t'));
    const log = await recordLog(file);
    log.write(1, Buffer.from('x'));
    await log.discard();
    expect(await readdir(join(dir, '.task-cache', 'logs'))).toEqual([]);
    const s = sink();
    expect(await replayLog(file, s.s, s.s)).toBe(false);
    expect(await replayLog(join(dir, '.task-cache', '.gitignore'), s.s, s.s)).toBe(false);
    expect(s.text()).toBe('');
  });
});
