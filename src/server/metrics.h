// Counters the server keeps for GET /metrics (Prometheus text format).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace engram::server {

struct Metrics {
  std::atomic<uint64_t> requests_ok{0};
  std::atomic<uint64_t> requests_client_error{0};  // 4xx
  std::atomic<uint64_t> requests_server_error{0};  // 5xx
  std::atomic<uint64_t> requests_cancelled{0};     // the client went away or timed out
  std::atomic<uint64_t> prompt_tokens{0};          // rendered prompt tokens, cached or not
  std::atomic<uint64_t> prompt_tokens_evaluated{0};
  std::atomic<uint64_t> completion_tokens{0};
  std::atomic<uint64_t> prefill_us{0};  // time spent evaluating prompts
  std::atomic<uint64_t> decode_us{0};   // time spent in decode steps
  std::atomic<uint64_t> decode_steps{0};
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> slots_busy{0};
  std::atomic<int64_t> slots_total{0};

  std::string prometheus() const;
};

}  // namespace engram::server
