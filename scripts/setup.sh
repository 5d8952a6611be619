#!/usr/bin/env bash
# Installs the Debian 12 packages Passage needs to build, test and run, skipping
# those already present. Needs root (or sudo). Safe to run again.
#   scripts/setup.sh             build, run and test (the test suite's tools too)
#   scripts/setup.sh --run-only  build and run only (scripts/serve.sh)
set -euo pipefail

run_only=false
case "${1:-}" in
  "") ;;
  --run-only) run_only=true ;;
  *) echo "setup: unknown option '$1' (expected --run-only or nothing)" >&2; exit 2 ;;
esac

packages=(
  g++ cmake make pkg-config ccache
  librocksdb-dev libboost-dev librdkafka-dev nlohmann-json3-dev libsimdjson-dev libssl-dev
  libcli11-dev libspdlog-dev prometheus-cpp-dev libjemalloc-dev libcurl4-openssl-dev
)
if ! $run_only; then
  # The tests: GoogleTest, benchmarks, independent Kafka clients, a real SMTP server,
  # Chromium and Node.js for the browser journeys.
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev kcat python3-kafka curl
    python3-aiosmtpd chromium nodejs)
  # npm ships inside some nodejs builds; Debian's own nodejs needs the npm package.
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

$run_only && exit 0

# The browser tests' pinned npm packages (tests/browser/package-lock.json). playwright-core
# 1.65 needs Node.js 20 or later; Debian 12's own nodejs is 18.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  echo "setup: the browser tests need Node.js >= 20 (found $(node --version 2>/dev/null || echo none));" \
    "install Node.js 20 (e.g. from NodeSource) and run again" >&2
  exit 1
fi
browser_dir="$(dirname "$0")/../tests/browser"
if ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.package-lock.json.installed" 2>/dev/null; then
  echo "setup: npm ci in tests/browser"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error &&
    cp package-lock.json node_modules/.package-lock.json.installed)
fi
