import { describe, expect, it } from 'vitest';
import { createDigester, descriptorOf, digestStream, isDigest, parseDigest, sha256Digest } from './digest.js';
import { DigestInvalidError, DigestMismatchError, SizeInvalidError, SizeMismatchError } from './errors.js';
import { verifyBytes, verifyStream } from './verify.js';

const enc = (s: string) => new TextEncoder().encode(s);
async function* from(...pieces: string[]) {
  for (const p of pieces) yield enc(p);
}

describe('digests', () => {
  it('computes and recognises sha256 digests', () => {
    expect(sha256Digest(enc(''))).toBe(
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(isDigest(sha256Digest(enc('x')))).toBe(true);
    expect(isDigest(`sha256:${'A'.repeat(64)}`)).toBe(false);
    expect(isDigest(`sha512:${'a'.repeat(128)}`)).toBe(true);
    expect(parseDigest(`sha256:${'b'.repeat(64)}`)).toEqual({ algorithm: 'sha256', encoded: 'b'.repeat(64) });
    expect(descriptorOf(enc('hi'), 'm')).toEqual({
      mediaType: 'm',
      digest: sha256Digest(enc('hi')),
      size: 2,
    });
    const d = createDigester();
    d.update(enc('h'));
    d.update(enc('i'));
    expect(d.digest()).toBe(sha256Digest(enc('hi')));
  });
  it.each([
    ['sha256', /no "algorithm:" prefix/],
    ['md5:abc', /not supported/],
    [`sha256:${'a'.repeat(63)}`, /64 lowercase hex/],
    [`sha256:${'G'.repeat(64)}`, /64 lowercase hex/],
  ])('parseDigest refuses %s', (value, message) => {
    expect(() => parseDigest(value)).toThrow(DigestInvalidError);
    expect(() => parseDigest(value)).toThrow(message);
  });
  it('digestStream hashes a stream', async () => {
    expect(await digestStream(from('a', 'bc'))).toEqual({ digest: sha256Digest(enc('abc')), size: 3 });
  });
});

describe('verifyStream', () => {
  const good = { digest: sha256Digest(enc('hello world')), size: 11 };

  it('passes verified content through', async () => {
    const out: string[] = [];
    for await (const p of verifyStream(from('hello', '', ' ', 'world'), good))
      out.push(new TextDecoder().decode(p));
    expect(out.join('')).toBe('hello world');
  });

  it('holds back the final piece until the digest checks out', async () => {
    const handed: string[] = [];
    const bad = { digest: sha256Digest(enc('hello WORLD')), size: 11 };
    await expect(
      (async () => {
        for await (const p of verifyStream(from('hello', ' ', 'world'), bad))
          handed.push(new TextDecoder().decode(p));
      })(),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    expect(handed.join('')).toBe('hello '); // never the complete content
  });

  it('throws SIZE_MISMATCH as soon as content overflows, and on underflow', async () => {
    const handed: number[] = [];
    const over = verifyStream(from('hello', ' world', 'and more'), good);
    await expect(
      (async () => {
        for await (const p of over) handed.push(p.byteLength);
      })(),
    ).rejects.toThrow(SizeMismatchError);
    expect(handed.reduce((a, b) => a + b, 0)).toBeLessThan(11);
    await expect(
      (async () => {
        for await (const _ of verifyStream(from('hello'), good));
      })(),
    ).rejects.toThrow(/shorter than the expected 11 bytes/);
  });

  it('checks the expected descriptor before reading', async () => {
    let read = false;
    async function* src() {
      read = true;
      yield enc('x');
    }
    await expect(
      (async () => {
        for await (const _ of verifyStream(src(), { digest: 'sha256:nope', size: 1 }));
      })(),
    ).rejects.toThrow(DigestInvalidError);
    await expect(
      (async () => {
        for await (const _ of verifyStream(src(), { digest: good.digest, size: -1 }));
      })(),
    ).rejects.toThrow(SizeInvalidError);
    expect(read).toBe(false);
  });

  it('stops when the signal fires', async () => {
    const controller = new AbortController();
    const it = verifyStream(
      from('a', 'b', 'c'),
      { digest: sha256Digest(enc('abc')), size: 3 },
      { signal: controller.signal },
    );
    await it.next();
    controller.abort(new Error('stop'));
    await expect(it.next()).rejects.toThrow('stop');
  });

  it('verifies an empty blob', async () => {
    const out: Uint8Array[] = [];
    for await (const p of verifyStream(from(), { digest: sha256Digest(enc('')), size: 0 })) out.push(p);
    expect(out).toEqual([]);
  });
});

describe('verifyBytes', () => {
  it('returns matching bytes and names mismatches', () => {
    const bytes = enc('abc');
    expect(verifyBytes(bytes, { digest: sha256Digest(bytes), size: 3 })).toBe(bytes);
    expect(() => verifyBytes(bytes, { digest: sha256Digest(bytes), size: 4 })).toThrow(/3 bytes, expected 4/);
    expect(() =>
      verifyBytes(bytes, { digest: sha256Digest(enc('abd')), size: 3 }, { location: 'mem' }),
    ).toThrow(/content from mem has digest sha256:[0-9a-f]{64}, expected/);
  });
});

describe('verifyStream with checkDigest: false (the caller proves the content itself)', () => {
  const collect = async (s: AsyncIterable<Uint8Array>) => {
    const out: string[] = [];
    for await (const p of s) out.push(new TextDecoder().decode(p));
    return out.join('');
  };
  it('skips the digest but still enforces the size, both ways', async () => {
    const other = { digest: sha256Digest(enc('xyz')), size: 3 };
    expect(await collect(verifyStream(from('a', 'bc'), other, { checkDigest: false }))).toBe('abc');
    await expect(collect(verifyStream(from('a', 'bc'), other))).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(
      collect(verifyStream(from('ab', 'cd'), other, { checkDigest: false })),
    ).rejects.toBeInstanceOf(SizeMismatchError);
    await expect(collect(verifyStream(from('ab'), other, { checkDigest: false }))).rejects.toBeInstanceOf(
      SizeMismatchError,
    );
  });
});
