// The memory REST API of `engram serve`, in the shape mem0 users know:
//   POST   /v1/memories               add: {"messages": [...] | "text", "infer": true, "user_id"}
//   GET    /v1/memories               list the caller's memories
//   DELETE /v1/memories               forget every memory of the caller
//   GET    /v1/memories/{id}          one memory
//   PUT    /v1/memories/{id}          {"text": "..."}: a new text
//   DELETE /v1/memories/{id}          forget one
//   GET    /v1/memories/{id}/history  its ADD / MERGE / UPDATE / DELETE events
//   POST   /v1/memories/search        {"query": "...", "limit": 10}
//   POST   /v1/memories/end           {"conversation": "..."}: end a conversation now
//                                     (prospective reflection over its turns)
// The user is always the API key's (ServerOptions::key_users); a `user_id` naming anyone else is
// refused (403), and an id of another user's memory is 404 like an id that does not exist.
// Errors are OpenAI's error object naming the field. Everything here is independent of HTTP, so
// that the fuzz target drives it with the same bodies the routes get.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/memory_session.h"
#include "server/api_error.h"

namespace engram::server {

// Parsed request bodies (each parser throws ApiError 400 naming the field).
struct MemoryAddRequest {
  std::vector<agent_memory::TranscriptTurn> messages;
  bool infer = true;  // true: extract memories with the model; false: store each user message
  std::string user_id;
};
MemoryAddRequest parse_memory_add(std::string_view body);

struct MemorySearchRequest {
  std::string query;
  size_t limit = 10;
  std::string user_id;
};
MemorySearchRequest parse_memory_search(std::string_view body);

struct MemoryUpdateRequest {
  std::string text;
  std::string user_id;
};
MemoryUpdateRequest parse_memory_update(std::string_view body);

struct MemoryEndRequest {
  std::string conversation;  // "" : the caller's unnamed conversation
};
MemoryEndRequest parse_memory_end(std::string_view body);

// A memory id from a URL: 1 to 16 digits, > 0. Throws ApiError 400 naming memory_id.
int64_t parse_memory_id(std::string_view text);

// What a route answers: status and JSON body.
struct MemoryResponse {
  int status = 200;
  std::string body;
};

// The routes' work. `run_with_model` runs a function on the thread that owns the model (the
// scheduler's engine) and returns when it is done; it is used by the verbs that need the model
// (add with infer, search and update for embeddings, end).
class MemoryApi {
 public:
  using WithModel = std::function<void(const std::function<void(agent_memory::MemoryModel&)>&)>;
  // `end_conversation` ends (user, conversation) in the scheduler's memory sessions and returns
  // the report.
  using EndConversation = std::function<agent_memory::ReflectionReport(
      const std::string& user, const std::string& conversation)>;
  MemoryApi(agent_memory::MemoryStore& store, WithModel run_with_model, EndConversation end);

  MemoryResponse add(const std::string& user, std::string_view body);
  MemoryResponse list(const std::string& user, std::string_view user_id_param);
  MemoryResponse wipe(const std::string& user, std::string_view user_id_param);
  MemoryResponse get(const std::string& user, std::string_view id);
  MemoryResponse update(const std::string& user, std::string_view id, std::string_view body);
  MemoryResponse remove(const std::string& user, std::string_view id);
  MemoryResponse history(const std::string& user, std::string_view id);
  MemoryResponse search(const std::string& user, std::string_view body);
  MemoryResponse end(const std::string& user, std::string_view body);

 private:
  agent_memory::MemoryStore& store_;
  WithModel with_model_;
  EndConversation end_;
};

// The store location from --memory-db / --memory-pg.
std::string memory_location(const std::string& db, const std::string& pg);

}  // namespace engram::server
