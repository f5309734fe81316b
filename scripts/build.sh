#!/usr/bin/env bash
# Configures and builds into build/ (the binary lands at build/zeppelin).
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
launcher=()
# A compiler cache, when installed (setup.sh installs it): a rebuild in another
# clone of the same tree, as CI's is, reuses what was compiled before.
if command -v ccache >/dev/null; then
  # Paths under the clone hash as relative ones, and the build directory is
  # left out of the hash (-g would put it in), so another clone hits too.
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-10G}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "${launcher[@]}" "$@" >/dev/null
ninja -C "$dir" -j "${JOBS:-2}"
