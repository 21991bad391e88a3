#!/usr/bin/env bash
# Installs the packed packages (pnpm pack of chunker, oci, lock, core) into an empty project with npm and
# checks that no ioredis is installed or loaded by a default run, and that adding ioredis enables
# redis:// locks (against a real redis-server); then installs the packed @task-cache/cli into an empty
# directory and runs `npx task-cache run` twice (save, then restore with the output replayed).
# Needs `pnpm build` first. See scripts/check-packed.ts.
# Usage: scripts/check-packed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# tsx from the repository root: the root tsconfig.json maps @task-cache/testkit to its sources.
exec node --import tsx scripts/check-packed.ts
