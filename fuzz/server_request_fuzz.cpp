// Fuzz target: the server's request parser (JSON body -> internal request). Any input either
// parses into a request whose fields are within the limits, or throws ApiError with a 4xx
// status and a message; nothing else escapes, nothing crashes.
//
// Input: byte 0 picks the endpoint (chat completions, completions, embeddings); the rest is
// the body.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "server/api_error.h"
#include "server/api_request.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace engram::server;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const RequestLimits limits;
  try {
    switch (data[0] % 3) {
      case 0:
      case 1: {
        const GenerationRequest r = data[0] % 3 == 0 ? parse_chat_request(body, limits)
                                                     : parse_completion_request(body, limits);
        check(r.max_tokens >= 0 && r.max_tokens <= limits.max_tokens, "max_tokens in range");
        check(r.stop.size() <= size_t(limits.max_stops), "stop count");
        check(r.sampling.temperature >= 0 && r.sampling.temperature <= 2, "temperature");
        check(r.sampling.top_p >= 0 && r.sampling.top_p <= 1, "top_p");
        if (r.kind == GenerationRequest::Kind::Chat) {
          check(!r.messages.empty(), "messages present");
          check(r.messages.size() <= size_t(limits.max_messages), "message count");
        } else {
          check(!r.prompt.empty(), "prompt present");
        }
        if (!r.conversation.empty()) check_conversation_id(r.conversation, "conversation");
        r.sampling.validate();
        break;
      }
      case 2: {
        const EmbeddingRequest r = parse_embedding_request(body, limits);
        check(!r.input.empty() || !r.input_tokens.empty(), "input present");
        check(r.input.size() + r.input_tokens.size() <= limits.max_inputs, "input count");
        break;
      }
    }
  } catch (const ApiError& e) {
    check(e.status() >= 400 && e.status() < 500, "a 4xx status");
    check(e.what()[0] != '\0', "a message");
  }
  return 0;
}
