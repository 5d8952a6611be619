#!/usr/bin/env bash
# One command to run Passage on a fresh Debian 12 machine: installs what is
# missing, builds the release preset and starts `passage serve` with embedded
# defaults (RocksDB in ./data, embedded Kafka-protocol broker). Extra arguments
# go to `passage serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --run-only
cmake --preset release -DPASSAGE_BUILD_TESTS=OFF -DPASSAGE_BUILD_BENCH=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target passage
exec build/release/app/passage serve "$@"
