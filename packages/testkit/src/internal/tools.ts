import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TestkitError } from '../errors.js';

/** Binaries the test suite needs → the Debian package that provides each. */
export const REQUIRED_TOOLS: Readonly<Record<string, string>> = {
  'redis-server': 'redis-server',
  'redis-sentinel': 'redis-sentinel',
  'redis-cli': 'redis-tools',
  'docker-registry': 'docker-registry',
  htpasswd: 'apache2-utils',
  openssl: 'openssl',
  skopeo: 'skopeo',
  zstd: 'zstd',
  curl: 'curl',
};

/** Whether `name` is an executable file in one of the `PATH` dirs (no process spawned: fast). */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The required binaries missing from `path`. */
export function missingTools(path = process.env.PATH ?? ''): string[] {
  return Object.keys(REQUIRED_TOOLS).filter((tool) => !onPath(tool, path));
}

/** The Debian packages that provide `tools` (deduplicated, in order). */
export function packagesFor(tools: readonly string[]): string[] {
  return [...new Set(tools.map((tool) => REQUIRED_TOOLS[tool] ?? tool))];
}

/** The error thrown when tools are missing and cannot be installed here. */
export function missingToolsError(tools: readonly string[], detail?: string): TestkitError {
  const list = tools.map((tool) => `${tool} (Debian package ${REQUIRED_TOOLS[tool] ?? tool})`).join(', ');
  return new TestkitError(
    'TESTKIT_ERR_MISSING_TOOLS',
    `The task-cache tests run the real servers and need these programs on PATH: ${list}. ` +
      `Install them with: sudo apt-get install -y ${packagesFor(tools).join(' ')}` +
      (detail ? `\n${detail}` : ''),
  );
}

function apt(args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ?? ''}`;
  return {
    ok: result.status === 0,
    output: `apt-get ${args.join(' ')} exited with ${result.status}\n${output}`,
  };
}

/**
 * Ensures every required tool is on PATH: installs the missing ones with apt-get when running
 * as root, otherwise throws {@link TestkitError} `TESTKIT_ERR_MISSING_TOOLS` naming exactly what to install.
 */
export function ensureTools(): void {
  const missing = missingTools();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !onPath('apt-get')) throw missingToolsError(missing);
  const packages = packagesFor(missing);
  console.warn(`task-cache testkit: installing ${packages.join(' ')} with apt-get`);
  let result = apt(['install', '-y', '-qq', ...packages]);
  if (!result.ok) {
    // A fresh machine may have no package lists yet.
    apt(['update', '-qq']);
    result = apt(['install', '-y', '-qq', ...packages]);
  }
  const still = missingTools();
  if (still.length > 0) {
    throw missingToolsError(still, `after ${result.output.slice(-4000)}`);
  }
}
