#!/bin/sh
# The demo's "build": bundles src/*.js into dist/app.js, and writes a minified copy and a
# manifest — slow enough (1 s) that a cache restore is visibly faster.
set -eu
mkdir -p dist
sleep 1
{
  echo "// bundled by build.sh"
  for f in src/*.js; do
    echo "// --- $f"
    cat "$f"
  done
} > dist/app.js
tr -s ' \n' ' ' < dist/app.js > dist/app.min.js
ls -l src | awk 'NR > 1 { print $NF, $5 }' > dist/manifest.txt
echo "build.sh: wrote dist/app.js, dist/app.min.js and dist/manifest.txt"
