// `engram serve`: the OpenAI-compatible server (src/server/). This file only turns flags into
// ServerOptions.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>

#include "agent_memory/store_input.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/error.h"
#include "engram/server.h"
#include "server/memory_api.h"
#include "util/trailing_space.h"

namespace engram::cli {

namespace {

struct ServeOptions {
  ServerOptions server;
  MemoryOptions memory;
  std::string api_key_file;
  size_t max_body_mib = 8;
  std::string memory_db, memory_pg;
  std::string memory_rerank = "fixed";
};

// "KEY:USER" -> the key, and its memory user in `users`; a key without ':' stays as it is.
std::string key_and_user(const std::string& entry, std::map<std::string, std::string>& users) {
  const size_t colon = entry.find(':');
  if (colon == std::string::npos) return entry;
  const std::string key = entry.substr(0, colon), user = entry.substr(colon + 1);
  if (key.empty() || user.empty()) {
    throw Error("an API key entry KEY:USER has an empty key or user");
  }
  agent_memory::check_user(user);
  users[key] = user;
  return key;
}

void serve(ServeOptions& o) {
  ServerOptions s = o.server;
  if (!o.api_key_file.empty()) {
    // One key per line; blank lines and lines starting with '#' are skipped.
    const std::string text = read_text_file(o.api_key_file);
    size_t at = 0;
    while (at <= text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      std::string line = without_trailing_space(text.substr(at, nl - at));
      if (!line.empty() && line[0] != '#') s.api_keys.push_back(line);
      at = nl + 1;
    }
    if (s.api_keys.empty()) {
      throw Error(fmt::format("--api-key-file '{}' holds no key", o.api_key_file));
    }
  }
  if (o.max_body_mib < 1 || o.max_body_mib > 1024) {
    throw Error(fmt::format("--max-body must be 1..1024 MiB, got {}", o.max_body_mib));
  }
  s.max_body_bytes = o.max_body_mib << 20;
  for (std::string& k : s.api_keys) k = key_and_user(k, s.key_users);
  s.memory_store = server::memory_location(o.memory_db, o.memory_pg);
  s.memory_learned_rerank = o.memory_rerank != "fixed";
  s.memory_rerank_rmm = o.memory_rerank == "learned-rmm";
  if (s.memory_idle_seconds < 1) {
    throw Error(fmt::format("--memory-idle must be >= 1 second, got {}", s.memory_idle_seconds));
  }
  s.memory = memory_params(o.memory, s.n_ctx);
  run_server(s);
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  ServerOptions& s = o->server;
  s.model_path = default_chat_model_path();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over the OpenAI API (chat completions, completions, embeddings)");
  cmd->add_option("-m,--model", s.model_path, "GGUF model file")->capture_default_str();
  cmd->add_option("--alias", s.model_id, "Model name reported by /v1/models (default: file stem)");
  cmd->add_option("--chat-template", s.chat_template,
                  "Use a built-in template: llama3, llama2, mistral, chatml");
  cmd->add_option("--host", s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "Port to listen on")->capture_default_str();
  CLI::Option* key = cmd->add_option("--api-key", s.api_keys,
                                     "Accept this API key (repeatable; none: no authentication); "
                                     "KEY:USER also names whose agent memory the key uses");
  cmd->add_option("--api-key-file", o->api_key_file,
                  "Accept the keys in this file, one per line (KEY or KEY:USER)")
      ->excludes(key);
  auto* mdb = cmd->add_option("--memory-db", o->memory_db,
                              "Agent memory in this SQLite store: chat completions use and update "
                              "the memories of the key's user; /v1/memories");
  auto* mpg = cmd->add_option("--memory-pg", o->memory_pg,
                              "Agent memory in this PostgreSQL store (postgresql:// URL)");
  mdb->excludes(mpg);
  cmd->add_option("--memory-idle", s.memory_idle_seconds,
                  "Seconds without a request after which a memory conversation ends (and what "
                  "to remember from it is decided)")
      ->capture_default_str();
  add_memory_rerank_option(cmd, o->memory_rerank);
  cmd->add_option("--embed-model", s.embed_model,
                  "A bert GGUF (e.g. MiniLM, bge) for the memory's embeddings and "
                  "/v1/embeddings, instead of the served model's mean-pooled hidden state")
      ->check(CLI::ExistingFile);
  cmd->add_option("--parallel", s.parallel, "Slots: requests generated together")
      ->capture_default_str();
  cmd->add_option("--queue", s.queue, "Requests that may wait for a slot before 503")
      ->capture_default_str();
  cmd->add_option("-t,--threads", s.threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--ctx", s.n_ctx,
                  "Context per slot in tokens (default: the model's trained one)");
  cmd->add_option("--batch", s.n_batch, "Prefill chunk size")->capture_default_str();
  cmd->add_option("--sessions-dir", s.sessions_dir,
                  "Keep named conversations here (resumed after a restart)");
  cmd->add_option("--max-tokens", s.max_tokens,
                  "Most tokens a reply may have (and the default when a request gives none)")
      ->capture_default_str();
  cmd->add_option("--timeout", s.timeout_seconds, "Seconds a request may take, queue included")
      ->capture_default_str();
  cmd->add_option("--max-body", o->max_body_mib, "Largest request body in MiB")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", s.quiet, "No request log on stderr");
  add_memory_options(cmd, o->memory);
  cmd->callback([o] { serve(*o); });
}

}  // namespace engram::cli
