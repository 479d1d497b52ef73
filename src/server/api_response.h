// The response bodies of the OpenAI API: whole completions, stream chunks, usage, embeddings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/task.h"

namespace engram::server {

// What every response of one request shares.
struct ResponseHead {
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  std::string model;
  int64_t created = 0;
  bool chat = true;
  std::string conversation;  // engram extension, "" when unnamed
};

std::string completion_body(const ResponseHead& h, const std::string& text, FinishReason finish,
                            const Usage& usage);
// A stream chunk: the first carries the role (chat), later ones text, the last the finish
// reason. Chunks carry "usage": null when the client asked for usage (it comes in its own last
// chunk, usage_chunk).
std::string chunk_body(const ResponseHead& h, const std::string* text, bool first,
                       FinishReason finish, bool include_usage);
std::string usage_chunk(const ResponseHead& h, const Usage& usage);
std::string embeddings_body(const std::string& model,
                            const std::vector<std::vector<float>>& embeddings,
                            const std::string& encoding_format, int64_t prompt_tokens);
std::string models_body(const std::string& model, int64_t created);

// A fresh id with the given prefix ("chatcmpl-" + 24 random characters).
std::string new_id(const std::string& prefix);

}  // namespace engram::server
