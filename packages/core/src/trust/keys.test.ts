import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../errors.js';
import { createSigner, keyId, loadSigningKey, loadTrustedKeys, SIGNATURE_ANNOTATION } from './keys.js';
import { verifyEntry } from './verify.js';

const pair = () => generateKeyPairSync('ed25519');
const pem = (k: ReturnType<typeof pair>) => ({
  priv: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  pub: k.publicKey.export({ type: 'spki', format: 'pem' }) as string,
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tc-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
}

describe('keys', () => {
  it('a signing key pasted without its PEM armour is refused without being repeated', () => {
    const body = pem(pair()).priv.split('\n').slice(1, -2).join('');
    const err = thrown(() => loadSigningKey('TASK_CACHE_SIGNING_KEY', body));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toContain('TASK_CACHE_SIGNING_KEY');
    expect(err.message).not.toContain(body.slice(0, 16));
    expect(JSON.stringify(err)).not.toContain(body.slice(0, 16));
  });

  it('refuses keys that are not Ed25519', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const rsaPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(thrown(() => loadSigningKey('signingKey', rsaPem)).message).toMatch(/Ed25519/);
    expect(thrown(() => loadTrustedKeys('trustedKeys', [rsa.publicKey])).message).toMatch(/Ed25519/);
  });

  it('trusted keys: concatenated PEM text, and paths separated by commas or newlines', async () => {
    const a = pem(pair());
    const b = pem(pair());
    expect(loadTrustedKeys('k', a.pub + b.pub)).toHaveLength(2);
    await writeFile(join(dir, 'a.pub'), a.pub);
    await writeFile(join(dir, 'b.pub'), b.pub);
    const keys = loadTrustedKeys('k', `${join(dir, 'a.pub')}, ${join(dir, 'b.pub')}\n`);
    expect(keys.map(keyId)).toEqual([
      keyId(loadTrustedKeys('k', a.pub)[0]!),
      keyId(loadTrustedKeys('k', b.pub)[0]!),
    ]);
    // A private key's public half is used; a path is named when it cannot be read.
    expect(keyId(loadTrustedKeys('k', a.priv)[0]!)).toBe(keyId(keys[0]!));
    expect(thrown(() => loadTrustedKeys('k', join(dir, 'missing.pub'))).message).toContain('missing.pub');
  });

  it('a signature verifies only over the same key, task, config and layers, under a trusted key', () => {
    const k = pair();
    const sign = createSigner(k.privateKey);
    const d = (c: string) => `sha256:${c.repeat(64)}`;
    const payload = { key: 'build-abc', task: 'build', config: d('c'), layers: [d('1'), d('2')] };
    const entry = {
      config: { key: 'build-abc', task: 'build' } as never,
      configDescriptor: { mediaType: 'x', digest: d('c'), size: 1 },
      layers: payload.layers.map((digest) => ({ mediaType: 'x', digest, size: 1 })),
      annotations: sign(payload),
    };
    const keys = [k.publicKey];
    expect(verifyEntry(entry, { key: 'build-abc', task: 'build' }, keys)).toEqual({ trusted: true });
    expect(verifyEntry(entry, { key: 'build-abd', task: 'build' }, keys).trusted).toBe(false);
    expect(verifyEntry(entry, { key: 'build-abc', task: 'build' }, [pair().publicKey]).trusted).toBe(false);
    const swapped = { ...entry, layers: [...entry.layers].reverse() };
    expect(verifyEntry(swapped, { key: 'build-abc', task: 'build' }, keys).trusted).toBe(false);
    const unsigned = { ...entry, annotations: {} };
    expect(verifyEntry(unsigned, { key: 'build-abc', task: 'build' }, keys)).toEqual({
      trusted: false,
      why: 'the entry is not signed',
    });
    const garbage = { ...entry, annotations: { [SIGNATURE_ANNOTATION]: 'AAAA' } };
    expect(verifyEntry(garbage, { key: 'build-abc', task: 'build' }, keys).trusted).toBe(false);
  });
});
