#!/usr/bin/env bash
# One command to install, build and run every test: first a release build
# (warnings as errors), then the same suite under AddressSanitizer and
# UndefinedBehaviorSanitizer. ccache keeps rebuilds cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs=$(nproc)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/passage-ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# Paths relative to the checkout, so a fresh clone elsewhere hits the same cache.
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=true
# Let ccache cache compilations that use the precompiled Beast header.
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CTEST_OUTPUT_ON_FAILURE=1

run_suite() {
  local preset=$1
  echo "=== ${preset}: configure and build ==="
  local t0=$SECONDS
  # Explicit, so a cache left by scripts/serve.sh (tests off) cannot hide the tests.
  local bench=ON
  [ "$preset" = asan ] && bench=OFF
  cmake --preset "$preset" -DPASSAGE_BUILD_TESTS=ON -DPASSAGE_BUILD_BENCH="$bench" >/dev/null
  cmake --build "build/$preset" -j"$jobs"
  echo "=== ${preset}: build took $((SECONDS - t0)) s; running tests ==="
  ctest --test-dir "build/$preset" -j"$jobs" --timeout 600
}

presets=(${PASSAGE_TEST_PRESETS:-release asan})
for p in "${presets[@]}"; do
  run_suite "$p"
done
ccache -s 2>/dev/null | grep -iE "hits|misses" | head -3 || true
