import { ensureTools } from './internal/tools.js';

/**
 * Vitest global setup (every project): makes sure redis-server, docker-registry, htpasswd,
 * openssl, skopeo, zstd and curl are on PATH. As root it installs missing ones with apt-get;
 * otherwise it fails with a message naming the Debian packages to install. No test skips itself
 * because a server is missing. Fast when everything is present (a few `access` calls).
 */
export default function setup(): void {
  ensureTools();
}
