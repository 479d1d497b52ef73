#!/usr/bin/env bash
# Sets up, builds and runs every test: the style check (clang-format), the unit/integration
# tests (release build), the same tests under AddressSanitizer + UndefinedBehaviorSanitizer,
# and the fuzz targets over their seed corpora. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
# Each stage's header says how long the run has taken so far (CI has a time budget).
stage() { echo "== $* (at $((SECONDS / 60))m$((SECONDS % 60))s)"; }

./scripts/setup.sh

stage "clang-format (.clang-format) over every C++ source"
find src include tests fuzz bench -maxdepth 2 \( -name '*.cpp' -o -name '*.h' \) -print0 |
  xargs -0 clang-format --dry-run -Werror

stage "release build + tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DENGRAM_BENCH=ON >/dev/null
cmake --build build -j"$jobs"
# The agent memory store's PostgreSQL tests run against a throwaway server (with_postgres.sh sets
# ENGRAM_TEST_PG); ENGRAM_REQUIRE_PG makes them fail, not skip, if it is ever missing.
ENGRAM_REQUIRE_PG=1 scripts/with_postgres.sh ctest --test-dir build --output-on-failure -j"$jobs"

stage "MaskBench sample: structured-generation masks (fails on an invalid instance accepted)"
scripts/maskbench_sample.sh build/engram

stage "engram serve: end-to-end suites (official openai client) and a short load test"
scripts/test_server.sh build
scripts/load_test.sh --build build --clients 8 --seconds 60 --parallel 4

stage "tokenizer conformance against transformers.js (node, offline)"
tools/tokenizer/check_conformance.sh build/engram

# One clang build serves both sanitizer stages: the library is compiled with ASan/UBSan (its
# parsers also with libFuzzer's coverage hooks), the unit tests link it under ASan/UBSan, the
# fuzz targets with libFuzzer's main. (Two separate builds took most of CI's time on two cores.)
stage "ASan/UBSan build (clang) + tests"
CXX=clang++ cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENGRAM_FUZZ=ON \
  -DENGRAM_BENCH=OFF >/dev/null
cmake --build build-san -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-san --output-on-failure -j"$jobs" -E '/Postgres\.'  # PostgreSQL: release only

stage "fuzz targets over their seed corpora (libFuzzer, ASan/UBSan)"
# Saved sessions of the golden test model, one per policy and one of a chat, made by this build
# (so they follow the format): the session fuzzer's seeds beside its committed ones.
sessions=$(mktemp -d)
trap 'rm -rf "$sessions"' EXIT
words="the cat sat on a mat and went home then the cat sat on the mat again"
for policy in episodic blocks sinks full; do
  text="$words $words $words"  # full: inside the model's 256 tokens; the others: past them
  [ "$policy" = full ] || text="$text $text"
  build/engram run -q -m tests/fixtures/golden/llama_f32.gguf --memory "$policy" -t 1 \
    -p "$text" -n 3 --temp 0 --save-session "$sessions/$policy.session" >/dev/null
done
printf '%s\n' "$words" "$words $words" | build/engram chat -m tests/fixtures/golden/llama_f32.gguf \
  --chat-template chatml --memory sinks -t 1 -n 3 --temp 0 --session "$sessions/chat.session" \
  >/dev/null
for target in build-san/*_fuzz; do
  name=$(basename "$target" _fuzz)
  corpus=fuzz/corpus/$name
  [ -d "$corpus" ] || { echo "fuzz: no seed corpus $corpus for $target"; exit 1; }
  extra=()
  [ "$name" = session ] && extra=("$sessions")
  "$target" -runs=0 "$corpus" "${extra[@]}"
done
echo "all test stages passed in $((SECONDS / 60))m$((SECONDS % 60))s"
