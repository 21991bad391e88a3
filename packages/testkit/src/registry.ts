// NOTE (size): test infrastructure, not product code: one fixture per registry set-up the suites need
// (anonymous, htpasswd + TLS, token auth with its token server), sharing the process and config plumbing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestkitError } from './errors.js';
import { simpleRequest } from './http.js';
import {
  freePort,
  makeTempDir,
  recordPid,
  removeTempDir,
  spawnTracked,
  type TrackedProcess,
  terminate,
  waitUntil,
} from './internal/process.js';
import { testPki } from './internal/tls.js';

/**
 * How the registry authenticates: `anonymous` (plain HTTP, no auth), `htpasswd` (TLS + Basic,
 * bcrypt htpasswd file) or `token` (TLS + Bearer tokens from the fixture's token server).
 */
export type RegistryMode = 'anonymous' | 'htpasswd' | 'token';

/** An action in a token-mode access rule; `'*'` grants every action asked for. */
export type RegistryAction = 'pull' | 'push' | 'delete' | '*';

/** A registry account. */
export interface RegistryUser {
  /** User name; `$` and `+` work (Harbor robot accounts look like `robot$task-cache+ci`). */
  username: string;
  /** Password; `:` and spaces work. */
  password: string;
  /**
   * Token mode: repository glob (`*` matches anything, `/` included: `'readonly/*'`, `'*'`) →
   * allowed actions. Scopes beyond these are granted reduced (possibly empty) access, like Harbor.
   * Ignored in htpasswd mode (every authenticated user may do everything).
   * @default { '*': ['pull', 'push', 'delete'] }
   */
  access?: Record<string, RegistryAction[]>;
}

/** Options of {@link startRegistry}. */
export interface RegistryFixtureOptions {
  /** Authentication set-up. */
  mode: RegistryMode;
  /**
   * Accounts (htpasswd and token modes).
   * @default [{ username: 'robot$task-cache+ci', password: 's3cr:et/pa ss-<random hex>' }]
   */
  users?: RegistryUser[];
  /**
   * Token mode: `expires_in` of issued tokens (and their `exp` claim), in seconds.
   * @default 300
   */
  tokenTtlSeconds?: number;
}

/** The token server of a token-mode registry (its own child process). */
export interface TokenServerInfo {
  /** Realm URL, `https://127.0.0.1:PORT/token`. */
  readonly url: string;
  /** Token requests served so far (all `/token` requests, 401s included); up to date when a response arrives. */
  readonly requests: number;
  /** PID of the token server process. */
  readonly pid: number;
}

/** A running CNCF distribution registry (`docker-registry` 2.8.2) on 127.0.0.1. */
export interface RegistryFixture {
  /** The authentication set-up. */
  readonly mode: RegistryMode;
  /** `'127.0.0.1:PORT'`. */
  readonly host: string;
  /** `'http://127.0.0.1:PORT'` (anonymous) or `'https://127.0.0.1:PORT'` (htpasswd, token). */
  readonly baseUrl: string;
  /** PEM path of the private CA (TLS modes), `undefined` in anonymous mode. */
  readonly caFile: string | undefined;
  /** PEM text of the private CA (TLS modes). */
  readonly caPem: string | undefined;
  /** First user's name (anonymous mode: `''`). */
  readonly username: string;
  /** First user's password (anonymous mode: `''`). */
  readonly password: string;
  /** Filesystem storage root of the registry (kept across stop/start). */
  readonly storageDir: string;
  /** Token server (token mode), else `undefined`. */
  readonly tokenServer: TokenServerInfo | undefined;
  /** PID of the current registry process, `undefined` while stopped. */
  readonly pid: number | undefined;
  /** The service name the token server and registry use (token mode), else `undefined`. */
  readonly service: string | undefined;
  /**
   * `'oci://127.0.0.1:PORT/<repoAndRef>'` plus `?plain-http=true` (anonymous) or
   * `?ca=<percent-encoded caFile>` (TLS modes).
   */
  ociUrl(repoAndRef: string): string;
  /** Stops the registry process (storage and token server kept); idempotent. */
  stop(): Promise<void>;
  /** Starts the registry again on the same port. */
  start(): Promise<void>;
  /**
   * Runs `docker-registry garbage-collect [--delete-untagged] config.yml` on the stopped
   * registry's storage (stopping it first if running and restarting it after); returns the output.
   */
  garbageCollect(options?: { deleteUntagged?: boolean }): Promise<string>;
  /** Stops the registry and the token server and removes the temp dir; idempotent. */
  close(): Promise<void>;
}

const SERVICE = 'task-cache-registry';
/** Response header (set through `http.headers`) identifying one fixture's registry. */
const INSTANCE_HEADER = 'x-testkit-instance';
const ISSUER = 'task-cache-testkit-token-server';
const TOKEN_SERVER_SCRIPT = fileURLToPath(new URL('./token-server.mjs', import.meta.url));

/** Environment without REGISTRY_* overrides, which distribution would apply on top of the config. */
const registryEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_')));

function validate(options: RegistryFixtureOptions): void {
  if (!['anonymous', 'htpasswd', 'token'].includes(options?.mode)) {
    throw new TestkitError(
      'TESTKIT_ERR_INVALID_OPTION',
      `startRegistry: options.mode must be 'anonymous', 'htpasswd' or 'token', got ${JSON.stringify(options?.mode)}`,
    );
  }
  if (options.users !== undefined) {
    if (options.users.length === 0 && options.mode !== 'anonymous') {
      throw new TestkitError('TESTKIT_ERR_INVALID_OPTION', 'startRegistry: options.users must not be empty');
    }
    for (const [i, user] of options.users.entries()) {
      if (!user.username || user.username.includes(':') || /\s/.test(user.username)) {
        throw new TestkitError(
          'TESTKIT_ERR_INVALID_OPTION',
          `startRegistry: options.users[${i}].username must be non-empty, without ':' or spaces`,
        );
      }
      if (!user.password || /[\r\n]/.test(user.password)) {
        throw new TestkitError(
          'TESTKIT_ERR_INVALID_OPTION',
          `startRegistry: options.users[${i}].password must be non-empty and on one line`,
        );
      }
    }
  }
  const ttl = options.tokenTtlSeconds;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) {
    throw new TestkitError(
      'TESTKIT_ERR_INVALID_OPTION',
      'startRegistry: options.tokenTtlSeconds must be a positive integer',
    );
  }
}

async function writeHtpasswd(file: string, users: RegistryUser[]): Promise<void> {
  writeFileSync(file, '', { mode: 0o600 });
  for (const user of users) {
    // -i reads the password from stdin: no shell quoting, nothing in argv.
    await new Promise<void>((resolve, reject) => {
      const child = execFile('htpasswd', ['-B', '-i', file, user.username], (error, _stdout, stderr) => {
        if (error) {
          reject(
            new TestkitError(
              'TESTKIT_ERR_COMMAND_FAILED',
              `htpasswd failed for ${user.username}: ${stderr || error.message}`,
              {
                cause: error,
              },
            ),
          );
        } else resolve();
      });
      child.stdin?.end(`${user.password}\n`);
    });
  }
}

interface TokenServerProcess {
  proc: TrackedProcess;
  port: number;
  requests: number;
}

async function startTokenServer(configFile: string): Promise<TokenServerProcess> {
  const proc = await spawnTracked('token-server', process.execPath, [TOKEN_SERVER_SCRIPT, configFile], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const state: TokenServerProcess = { proc, port: 0, requests: 0 };
  const child = proc.child;
  const listening = new Promise<number>((resolve, reject) => {
    child.on('message', (message: { type?: string; port?: number; seq?: number; requests?: number }) => {
      if (message?.type === 'listening' && typeof message.port === 'number') resolve(message.port);
      if (message?.type === 'request' && typeof message.requests === 'number') {
        state.requests = message.requests;
        if (child.connected) child.send({ type: 'ack', seq: message.seq });
      }
    });
    void proc.exited.then(({ code, signal }) =>
      reject(
        new TestkitError(
          'TESTKIT_ERR_START_FAILED',
          `token server exited during start-up (code ${code}, signal ${signal}):\n${proc.output()}`,
        ),
      ),
    );
  });
  try {
    state.port = await Promise.race([
      listening,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new TestkitError('TESTKIT_ERR_TIMEOUT', 'token server did not start within 30 s')),
          30_000,
        ).unref(),
      ),
    ]);
  } catch (error) {
    await terminate(proc, 'SIGKILL');
    throw error;
  }
  // The IPC channel must not keep the test process alive.
  child.unref();
  (child as unknown as { channel?: { unref(): void } }).channel?.unref();
  return state;
}

/**
 * Starts the real CNCF distribution registry (Debian `docker-registry` 2.8.2) on 127.0.0.1 with a
 * random free port and filesystem storage in a temp dir (deletes enabled). TLS modes use a
 * private CA made with openssl; token mode also starts the token server in its own process.
 * Resolves once `GET /v2/` answers.
 */
export async function startRegistry(options: RegistryFixtureOptions): Promise<RegistryFixture> {
  validate(options);
  const mode = options.mode;
  const tls = mode !== 'anonymous';
  const users: RegistryUser[] =
    mode === 'anonymous'
      ? []
      : (options.users ?? [
          { username: 'robot$task-cache+ci', password: `s3cr:et/pa ss-${randomBytes(6).toString('hex')}` },
        ]);
  const ttlSeconds = options.tokenTtlSeconds ?? 300;
  const dir = makeTempDir('registry');
  const storageDir = join(dir, 'storage');
  mkdirSync(storageDir);
  const configFile = join(dir, 'config.yml');

  const instance = randomBytes(8).toString('hex');
  let registry: TrackedProcess | undefined;
  let token: TokenServerProcess | undefined;
  let port = 0;
  let closed = false;

  const closeAll = async () => {
    if (registry) await terminate(registry);
    if (token) await terminate(token.proc);
    removeTempDir(dir);
  };

  try {
    const pki = tls ? await testPki() : undefined;
    let auth: Record<string, unknown> | undefined;
    if (mode === 'htpasswd') {
      const htpasswdFile = join(dir, 'htpasswd');
      await writeHtpasswd(htpasswdFile, users);
      auth = { htpasswd: { realm: 'task-cache-testkit', path: htpasswdFile } };
    } else if (mode === 'token' && pki) {
      const tokenConfig = join(dir, 'token-server.json');
      writeFileSync(
        tokenConfig,
        JSON.stringify({
          tlsCertFile: pki.serverCertFile,
          tlsKeyFile: pki.serverKeyFile,
          signingCertFile: pki.signingCertFile,
          signingKeyFile: pki.signingKeyFile,
          issuer: ISSUER,
          service: SERVICE,
          ttlSeconds,
          users: users.map((u) => ({
            username: u.username,
            password: u.password,
            access: u.access ?? { '*': ['pull', 'push', 'delete'] },
          })),
        }),
        { mode: 0o600 },
      );
      token = await startTokenServer(tokenConfig);
      auth = {
        token: {
          realm: `https://127.0.0.1:${token.port}/token`,
          service: SERVICE,
          issuer: ISSUER,
          rootcertbundle: pki.caFile,
        },
      };
    }

    const writeConfig = () => {
      // NOTE: JSON is valid YAML, and distribution's yaml.v2 parser reads it.
      const config = {
        version: '0.1',
        log: { level: 'warn', accesslog: { disabled: true } },
        storage: {
          filesystem: { rootdirectory: storageDir },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: {
          addr: `127.0.0.1:${port}`,
          secret: randomBytes(16).toString('hex'),
          headers: { [INSTANCE_HEADER]: [instance] },
          ...(pki ? { tls: { certificate: pki.serverCertFile, key: pki.serverKeyFile } } : {}),
        },
        ...(auth ? { auth } : {}),
      };
      writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    };

    const baseUrl = () => `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

    const launch = async (fixedPort: boolean) => {
      for (let attempt = 0; ; attempt++) {
        if (!fixedPort) {
          port = await freePort();
          writeConfig();
        }
        const p = await spawnTracked('docker-registry', 'docker-registry', ['serve', configFile], {
          cwd: dir,
          env: registryEnv(),
        });
        try {
          await waitUntil(`docker-registry on 127.0.0.1:${port}`, p, async () => {
            const res = await simpleRequest(`${baseUrl()}/v2/`, { ca: pki?.caPem });
            // NOTE: the instance header proves it is our registry answering, not another
            // fixture's that won a race for the same port.
            return (res.status === 200 || res.status === 401) && res.headers[INSTANCE_HEADER] === instance;
          });
          registry = p;
          return;
        } catch (error) {
          await terminate(p, 'SIGKILL');
          if (fixedPort || attempt >= 4 || !/address already in use/i.test(p.output())) throw error;
        }
      }
    };
    await launch(false);

    const first = users[0];
    const fixture: RegistryFixture = {
      mode,
      get host() {
        return `127.0.0.1:${port}`;
      },
      get baseUrl() {
        return baseUrl();
      },
      caFile: pki?.caFile,
      caPem: pki?.caPem,
      username: first?.username ?? '',
      password: first?.password ?? '',
      storageDir,
      service: mode === 'token' ? SERVICE : undefined,
      tokenServer: token
        ? {
            url: `https://127.0.0.1:${token.port}/token`,
            get requests() {
              return token?.requests ?? 0;
            },
            pid: token.proc.pid,
          }
        : undefined,
      get pid() {
        return registry && !registry.hasExited() ? registry.pid : undefined;
      },
      ociUrl(repoAndRef) {
        const query = pki ? `ca=${encodeURIComponent(pki.caFile)}` : 'plain-http=true';
        return `oci://127.0.0.1:${port}/${repoAndRef.replace(/^\/+/, '')}?${query}`;
      },
      async stop() {
        if (registry) await terminate(registry);
      },
      async start() {
        if (closed)
          throw new TestkitError('TESTKIT_ERR_COMMAND_FAILED', 'registry fixture was closed; cannot start');
        if (registry && !registry.hasExited()) return;
        await launch(true);
      },
      async garbageCollect(gcOptions = {}) {
        if (closed)
          throw new TestkitError(
            'TESTKIT_ERR_COMMAND_FAILED',
            'registry fixture was closed; cannot garbage-collect',
          );
        const wasRunning = registry !== undefined && !registry.hasExited();
        if (registry) await terminate(registry);
        // NOTE: distribution's GC fails on a storage root without repositories or blobs ("Path
        // not found"); an empty registry simply has nothing to collect.
        for (const sub of ['repositories', 'blobs']) {
          mkdirSync(join(storageDir, 'docker/registry/v2', sub), { recursive: true });
        }
        const args = [
          'garbage-collect',
          ...(gcOptions.deleteUntagged ? ['--delete-untagged'] : []),
          configFile,
        ];
        const output = await new Promise<string>((resolve, reject) => {
          const child = execFile(
            'docker-registry',
            args,
            { cwd: dir, env: registryEnv(), maxBuffer: 64 * 1024 * 1024 },
            (error, stdout, stderr) => {
              if (error) {
                reject(
                  new TestkitError(
                    'TESTKIT_ERR_COMMAND_FAILED',
                    `docker-registry ${args.join(' ')} failed: ${stderr || error.message}`,
                    {
                      cause: error,
                    },
                  ),
                );
              } else resolve(`${stdout}${stderr}`);
            },
          );
          if (child.pid !== undefined) recordPid(child.pid, 'docker-registry-gc');
        });
        if (wasRunning) await launch(true);
        return output;
      },
      async close() {
        if (closed) return;
        closed = true;
        await closeAll();
      },
    };
    return fixture;
  } catch (error) {
    closed = true;
    await closeAll();
    throw error;
  }
}
