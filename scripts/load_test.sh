#!/usr/bin/env bash
# Load test of `engram serve` on loopback: starts a server, runs tools/load/load_test.mjs
# against it, stops it (SIGTERM; it must exit 0), and fails on any failed request, a crash, or
# RSS at the end more than 10% above RSS after the first minute.
#   scripts/load_test.sh [--clients 32] [--seconds 600] [--model M] [--parallel 8] [--build DIR]
# CI runs the short form: --clients 8 --seconds 60.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=32 seconds=600 parallel=8 build=build max_tokens=48
model=tests/fixtures/golden/llama_f32.gguf template=(--chat-template chatml)
while (($#)); do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --model) model=$2; template=(); shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "load_test: unknown argument $1"; exit 2 ;;
  esac
done
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
log=$(mktemp)
"$build/engram" serve -m "$model" "${template[@]}" --port "$port" --parallel "$parallel" \
  --queue $((clients * 2)) -q 2>"$log" &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "load_test: the server died at start"; exit 1; }
  sleep 0.1
done
ln -sfn ../../tools/npm/node_modules tools/load/node_modules
summary=$(node tools/load/load_test.mjs --url "http://127.0.0.1:$port/v1" --pid "$pid" \
  --clients "$clients" --seconds "$seconds" --max-tokens "$max_tokens") || status=$?
rm -f tools/load/node_modules
echo "$summary"
kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "load_test: the server crashed"; exit 1; }
kill -TERM "$pid"
wait "$pid" || { cat "$log"; echo "load_test: the server exited with $? on SIGTERM"; exit 1; }
[ "${status:-0}" -eq 0 ] || { echo "load_test: requests failed"; exit 1; }
node -e '
const s = JSON.parse(process.argv[1]);
if (s.rss_growth !== null && s.rss_growth > 0.10) {
  console.log(`load_test: RSS grew ${(100 * s.rss_growth).toFixed(1)}% after the first minute`);
  process.exit(1);
}
console.log(`load_test: ok: ${s.requests} requests, 0 failed, p50 ${s.latency_ms_p50} ms, ` +
  `p99 ${s.latency_ms_p99} ms, ${s.tokens_per_s.toFixed(1)} tok/s, RSS ${s.rss_mib_early.toFixed(1)} -> ${s.rss_mib_end.toFixed(1)} MiB`);
' "$summary"
