// Request bodies of the OpenAI API, parsed and checked into what the engine runs. Every field
// is validated here; an error names the field (`param`) and what was wrong with it. This is
// the parser the request fuzzer drives.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engram/chat_template.h"
#include "engram/sampler.h"

namespace engram::server {

struct RequestLimits {
  int max_messages = 1024;
  int max_tokens = 4096;  // largest max_tokens a request may ask for
  int max_stops = 16;
  size_t max_stop_bytes = 256;
  size_t max_inputs = 256;  // embeddings: strings per request
};

// /v1/chat/completions (kind Chat, `messages`) and /v1/completions (kind Completion, `prompt`).
struct GenerationRequest {
  enum class Kind { Chat, Completion };
  Kind kind = Kind::Chat;
  std::string model;
  std::vector<ChatMessage> messages;
  std::string prompt;
  SamplerParams sampling;
  bool seeded = false;  // `seed` was given (otherwise the server draws one)
  int max_tokens = 0;   // 0: as many as the context allows, up to the server's limit
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt before the completion
  std::string user;
  std::string conversation;  // engram extension: a named, persistent conversation
  bool temporary = false;    // engram extension: a temporary chat (no agent memory read or written)
  // response_format: "text", "json_object" (any JSON object) or "json_schema" (`json_schema`
  // holds the schema as JSON text).
  std::string response_format = "text";
  std::string json_schema;
};

// Throws ApiError (400, naming the field) for malformed JSON, unknown or ill-typed fields and
// values out of range.
GenerationRequest parse_chat_request(std::string_view body, const RequestLimits& limits);
GenerationRequest parse_completion_request(std::string_view body, const RequestLimits& limits);

struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> input;
  std::vector<std::vector<int32_t>> input_tokens;  // when `input` was given as token ids
  std::string encoding_format = "float";           // float | base64
  std::string user;
};
EmbeddingRequest parse_embedding_request(std::string_view body, const RequestLimits& limits);

// A conversation id as a file name can hold it: 1-64 of [A-Za-z0-9_-]. Throws ApiError naming
// `param` otherwise.
void check_conversation_id(const std::string& id, const std::string& param);

}  // namespace engram::server
