#!/usr/bin/env bash
# Runs a command with Node 24 LTS first on PATH. Node 24 comes from the npm registry as the
# package `node@24` (no other download needed), installed once into $TASK_CACHE_NODE24_DIR
# (default: ~/.cache/task-cache-node24).
# Usage: scripts/with-node24.sh pnpm test
set -euo pipefail
dir="${TASK_CACHE_NODE24_DIR:-$HOME/.cache/task-cache-node24}"
bin="$dir/node_modules/.bin"
if ! [ -x "$bin/node" ] || ! "$bin/node" -e 'process.exit(process.versions.node.split(".")[0] === "24" ? 0 : 1)' 2>/dev/null; then
  echo "with-node24: installing node@24 from the npm registry into $dir" >&2
  mkdir -p "$dir"
  npm i --prefix "$dir" --no-audit --no-fund --silent node@24 >&2
fi
# pnpm is a JS program; it runs on whichever node is first on PATH.
export PATH="$bin:$PATH"
echo "with-node24: $(node --version)" >&2
exec "$@"
