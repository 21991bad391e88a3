/**
 * Signing and trusted keys (Ed25519 through `node:crypto`): read from an option or from
 * `TASK_CACHE_SIGNING_KEY` / `TASK_CACHE_TRUSTED_KEYS`, as PEM text or a path to a PEM file.
 * Nothing here ever puts key material into a message: errors name the option only.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidOptionError } from '../errors.js';
import { payloadBytes, type SigningPayload } from './payload.js';

/** Manifest annotation holding the base64 Ed25519 signature (docs/format.md §4.1). */
export const SIGNATURE_ANNOTATION = 'dev.task-cache.signature';
/** Manifest annotation naming the signing key: `sha256:<hex>` of its SPKI DER form. */
export const SIGNER_ANNOTATION = 'dev.task-cache.signer';

const PEM_RE = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----/g;

/** The id of a public key: `sha256:<hex>` of its SPKI DER encoding. */
export function keyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

/**
 * PEM text as given, or the contents of the file it names. `secret`: the value may be a private
 * key pasted without its PEM armour, so the message does not repeat it (nor the cause, whose
 * message would name it).
 */
function pemText(field: string, value: string, secret: boolean): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value.trim(), 'utf8');
  } catch (cause) {
    if (secret)
      throw new InvalidOptionError(field, 'is neither PEM text nor the path of a readable PEM file');
    throw new InvalidOptionError(field, `cannot read the key file ${JSON.stringify(value.trim())}`, {
      cause,
    });
  }
}

function ensureEd25519(field: string, key: KeyObject): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new InvalidOptionError(field, `must be an Ed25519 key, got ${key.asymmetricKeyType ?? key.type}`);
  return key;
}

/**
 * The private signing key of `value` (a `KeyObject`, PEM text, or a path to a PEM file).
 * @throws {InvalidOptionError} naming `field` (never the key) when it is not an Ed25519 private key.
 */
export function loadSigningKey(field: string, value: unknown): KeyObject {
  if (typeof value === 'object' && value !== null && 'asymmetricKeyType' in value) {
    const key = value as KeyObject;
    if (key.type !== 'private') throw new InvalidOptionError(field, 'must be a private key');
    return ensureEd25519(field, key);
  }
  if (typeof value !== 'string' || value.trim() === '')
    throw new InvalidOptionError(field, 'must be PEM text, a path to a PEM file, or a KeyObject');
  let key: KeyObject;
  try {
    key = createPrivateKey(pemText(field, value, true));
  } catch (cause) {
    if (cause instanceof InvalidOptionError) throw cause;
    throw new InvalidOptionError(field, 'is not a PEM private key', { cause: undefined });
  }
  return ensureEd25519(field, key);
}

/**
 * The trusted public keys of `value`: a `KeyObject`, PEM text (several concatenated keys
 * allowed), a path to a PEM file, a list of those, or a string of several separated by commas or
 * newlines. Private keys are accepted (their public half is used).
 * @throws {InvalidOptionError} naming `field` when one is not an Ed25519 key.
 */
export function loadTrustedKeys(field: string, value: unknown): KeyObject[] {
  const items: unknown[] = Array.isArray(value) ? value : [value];
  const keys: KeyObject[] = [];
  for (const item of items) {
    if (typeof item === 'object' && item !== null && 'asymmetricKeyType' in item) {
      const k = item as KeyObject;
      keys.push(ensureEd25519(field, k.type === 'private' ? createPublicKey(k) : k));
      continue;
    }
    if (typeof item !== 'string')
      throw new InvalidOptionError(field, 'must be PEM text, paths to PEM files, or KeyObjects');
    const texts = item.includes('-----BEGIN')
      ? [item]
      : item
          .split(/[,\n]/)
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map((path) => pemText(field, path, false));
    for (const text of texts) {
      const blocks = text.match(PEM_RE) ?? [];
      if (blocks.length === 0) throw new InvalidOptionError(field, 'holds no PEM key');
      for (const pem of blocks) {
        let key: KeyObject;
        try {
          key = createPublicKey(pem);
        } catch {
          throw new InvalidOptionError(field, 'holds a PEM block that is not a key');
        }
        keys.push(ensureEd25519(field, key));
      }
    }
  }
  return keys;
}

/** The `sign` function of a save: the annotations carrying the signature of `payload`. */
export function createSigner(key: KeyObject): (payload: SigningPayload) => Record<string, string> {
  const id = keyId(key);
  return (payload) => ({
    [SIGNATURE_ANNOTATION]: sign(null, payloadBytes(payload), key).toString('base64'),
    [SIGNER_ANNOTATION]: id,
  });
}
