#!/usr/bin/env bash
# Install what blockwatch needs on Debian 12 (apt packages only; run as root or
# with sudo), fetch the viewer's front-end packages from the npm registry, and
# build. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  libboost-dev libunwind-dev libzydis-dev libabsl-dev libprotobuf-dev protobuf-compiler zlib1g-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  nlohmann-json3-dev
  libdw-dev libdebuginfod-dev llvm-14-dev libiberty-dev debuginfod libc6-dbg
  clang libclang-rt-14-dev
  golang-go chromium nodejs
  strace procps prometheus
  dpkg-dev file
  cargo rustc librust-tokio-dev
)
missing=()
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's nodejs comes without npm; other node packagings include it.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive ${sudo_cmd:-} apt-get install -y -qq --no-install-recommends npm
fi

if [ -f viewer/package.json ]; then
  (cd viewer && npm ci --no-audit --no-fund --loglevel=error)
fi

scripts/build.sh
