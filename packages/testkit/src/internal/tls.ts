import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestkitError } from '../errors.js';
import { makeTempDir } from './process.js';

const run = promisify(execFile);

/** Files of the private PKI used by the TLS registry set-ups. */
export interface TestPki {
  readonly dir: string;
  /** Self-signed CA certificate (PEM path); clients trust this. */
  readonly caFile: string;
  readonly caPem: string;
  /** Server certificate for `127.0.0.1` (IP SAN) and `localhost`, signed by the CA. */
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** Token signing certificate (signed by the CA) and its RSA key. */
  readonly signingCertFile: string;
  readonly signingKeyFile: string;
}

let cached: Promise<TestPki> | undefined;

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new TestkitError(
      'TESTKIT_ERR_COMMAND_FAILED',
      `openssl ${args[0]} failed: ${stderr || String(error)}`,
      {
        cause: error,
      },
    );
  }
}

async function leaf(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    'req',
    '-new',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
    '-days',
    '7',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.pem`,
  ]);
}

async function generate(): Promise<TestPki> {
  const dir = makeTempDir('pki');
  await openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '7',
    '-sha256',
    '-subj',
    '/CN=task-cache testkit CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await leaf(
    dir,
    'server',
    '/CN=127.0.0.1',
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  await leaf(
    dir,
    'signing',
    '/CN=task-cache testkit token signer',
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ''].join('\n'),
  );
  const caFile = join(dir, 'ca.pem');
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    serverCertFile: join(dir, 'server.pem'),
    serverKeyFile: join(dir, 'server.key'),
    signingCertFile: join(dir, 'signing.pem'),
    signingKeyFile: join(dir, 'signing.key'),
  };
}

/**
 * The private CA, a `127.0.0.1` server certificate and a token signing certificate, made with
 * `openssl` once per process (removed when the process exits).
 */
export function testPki(): Promise<TestPki> {
  cached ??= generate().catch((error: unknown) => {
    cached = undefined;
    throw error;
  });
  return cached;
}
