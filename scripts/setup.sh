#!/usr/bin/env bash
# Installs the Debian 12 packages Passage needs to build, test and run, skipping
# those already present. Needs root (or sudo). Safe to run again.
set -euo pipefail

packages=(
  g++ cmake make pkg-config ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev libboost-dev librdkafka-dev nlohmann-json3-dev libsimdjson-dev libssl-dev
  libcli11-dev libspdlog-dev prometheus-cpp-dev libjemalloc-dev
  kcat python3-kafka curl
  chromium nodejs
  libcurl4-openssl-dev python3-aiosmtpd
)
# npm ships inside some nodejs builds; Debian's own nodejs needs the npm package.
command -v npm >/dev/null 2>&1 || packages+=(npm)

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

# The browser tests' pinned npm packages (tests/browser/package-lock.json).
browser_dir="$(dirname "$0")/../tests/browser"
if ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.package-lock.json.installed" 2>/dev/null; then
  echo "setup: npm ci in tests/browser"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error &&
    cp package-lock.json node_modules/.package-lock.json.installed)
fi
