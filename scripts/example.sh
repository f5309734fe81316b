#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the example system
# (examples/shop) on the embedded default, in the background.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build -DZEPPELIN_BUILD_TESTS=OFF -DZEPPELIN_BUILD_BENCH=OFF
build/zeppelin run -d examples/shop
build/zeppelin ps shop
web=$(build/zeppelin ps shop -o json | python3 -c 'import json,sys; print(next(r["address"] for r in json.load(sys.stdin) if r["service"] == "web"))')
for _ in 1 2 3; do python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://$web/').read().decode(), end='')"; done
cat <<TXT

The shop is running. Try:
  build/zeppelin logs -f shop        # follow every replica's output (Ctrl-C to leave)
  build/zeppelin ps                  # replicas, health, restarts, addresses
  build/zeppelin down shop           # stop and remove it
TXT
