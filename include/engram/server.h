// `engram serve`: the OpenAI API over HTTP (chat completions, completions, models, embeddings),
// with named conversations that persist across requests and restarts, and many clients decoded
// together. The HTTP layer is thin: requests become tasks for the scheduler's slots, which run
// the library's conversation engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engram/memory.h"

namespace engram {

struct ServerOptions {
  std::string model_path;
  std::string model_id;       // the name /v1/models reports (default: the file's stem)
  std::string chat_template;  // a built-in template instead of the file's ("" : the file's)
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> api_keys;  // none: no authentication
  // Agent memory: the store ("sqlite:PATH" or a PostgreSQL URL; "" : off), whose memories each
  // key uses (a key not listed: a user named after the key's hash; no keys: "anonymous"), and
  // how long a memory conversation may be idle before it is ended and reflected on.
  std::string memory_store;
  std::map<std::string, std::string> key_users;
  int memory_idle_seconds = 600;
  bool memory_learned_rerank = false;  // --memory-rerank learned
  bool memory_rerank_rmm = false;      // with RMM's parameters (--memory-rerank learned-rmm)
  // A `bert` GGUF (--embed-model) whose embeddings the agent memory and /v1/embeddings use
  // instead of the served model's mean-pooled hidden state ("" : the served model's).
  std::string embed_model;

  int parallel = 1;  // slots decoded together
  int queue = 64;    // requests waiting for a slot before 503
  int threads = 0;   // compute threads (0: the default)
  MemoryParams memory;
  int64_t n_ctx = 0;
  int n_batch = 512;
  std::string sessions_dir;  // named conversations are kept here ("" : refused)
  size_t max_body_bytes = 8u << 20;
  int max_tokens = 4096;      // the most a request may ask for, and the default
  int timeout_seconds = 600;  // a request's limit, queue wait included
  bool quiet = false;         // no request log on stderr
};

// Binds, loads the model (GET /health answers 503 until it is ready), serves until SIGINT or
// SIGTERM, then stops accepting, cancels what runs (conversations are saved) and returns 0.
// Throws engram::Error when it cannot start (address in use, unreadable model, bad options).
int run_server(const ServerOptions& options);

}  // namespace engram
