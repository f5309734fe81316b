#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit and end-to-end
# tests on a normal build, then again on an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Tests and benchmarks on explicitly: example.sh configures the same build/ without them.
scripts/build.sh build -DZEPPELIN_BUILD_TESTS=ON -DZEPPELIN_BUILD_BENCH=ON
(cd build && ctest --output-on-failure --no-tests=error -j 2 --timeout 600)

scripts/build.sh build-asan -DZEPPELIN_SANITIZE=ON -DZEPPELIN_BUILD_TESTS=ON -DZEPPELIN_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure --no-tests=error -j 2 --timeout 900)
