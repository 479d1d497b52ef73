#include "server/metrics.h"

#include <fmt/format.h>

namespace engram::server {

std::string Metrics::prometheus() const {
  std::string out;
  auto counter = [&](const char* name, const char* help, const std::string& samples) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{}", name, help, name, samples);
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  counter("engram_requests_total", "Requests answered, by outcome.",
          fmt::format("engram_requests_total{{outcome=\"ok\"}} {}\n"
                      "engram_requests_total{{outcome=\"client_error\"}} {}\n"
                      "engram_requests_total{{outcome=\"server_error\"}} {}\n"
                      "engram_requests_total{{outcome=\"cancelled\"}} {}\n",
                      requests_ok.load(), requests_client_error.load(),
                      requests_server_error.load(), requests_cancelled.load()));
  counter("engram_prompt_tokens_total", "Prompt tokens of the requests (cached or evaluated).",
          fmt::format("engram_prompt_tokens_total {}\n", prompt_tokens.load()));
  counter("engram_prompt_tokens_evaluated_total", "Prompt tokens run through the model.",
          fmt::format("engram_prompt_tokens_evaluated_total {}\n", prompt_tokens_evaluated.load()));
  counter("engram_completion_tokens_total", "Tokens generated.",
          fmt::format("engram_completion_tokens_total {}\n", completion_tokens.load()));
  counter("engram_decode_steps_total", "Batched decode steps (one forward pass each).",
          fmt::format("engram_decode_steps_total {}\n", decode_steps.load()));
  gauge("engram_queue_depth", "Requests waiting for a slot.", double(queue_depth.load()));
  gauge("engram_slots_busy", "Slots generating or reading a prompt.", double(slots_busy.load()));
  gauge("engram_slots_total", "Slots (--parallel).", double(slots_total.load()));
  const double pre_s = prefill_us.load() / 1e6, dec_s = decode_us.load() / 1e6;
  gauge("engram_prefill_tokens_per_second", "Prompt tokens evaluated per second of prefill.",
        pre_s > 0 ? prompt_tokens_evaluated.load() / pre_s : 0.0);
  gauge("engram_decode_tokens_per_second", "Tokens generated per second of decoding.",
        dec_s > 0 ? completion_tokens.load() / dec_s : 0.0);
  return out;
}

}  // namespace engram::server
