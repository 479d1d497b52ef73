#!/usr/bin/env bash
# The server's end-to-end suites: `engram serve` on loopback driven by the official `openai`
# npm client (tests/server/*.test.mjs start and stop their own servers). The agent memory suites
# run on SQLite and on a throwaway PostgreSQL (scripts/with_postgres.sh sets ENGRAM_TEST_PG; each
# suite makes a database of its own on it).
# Usage: scripts/test_server.sh [BUILD_DIR [SUITE.test.mjs...]]   (default build/, every suite)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export ENGRAM_BIN=$PWD/$build/engram ENGRAM_ROOT=$PWD
export NODE_PATH=$PWD/tools/npm/node_modules
[ -x "$ENGRAM_BIN" ] || { echo "test_server: no $ENGRAM_BIN (build first)"; exit 1; }
# The suites import `openai` from tools/npm (installed by scripts/setup.sh).
ln -sfn ../../tools/npm/node_modules tests/server/node_modules
trap 'rm -f tests/server/node_modules' EXIT
shift || true
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(tests/server/)
scripts/with_postgres.sh node --test --test-concurrency=1 "${suites[@]}"
