// `engram memory list|add|forget|search|history|wipe|export|import (--db FILE | --pg URL)
// --user U`: a user's agent memories, as the assistant will see them, under the user's control.
// `add` and `search` take --embed-model FILE (a `bert` GGUF) for dense retrieval.
// Every verb reads and writes only the named user's memories. `add` is an explicit "remember
// this": it is stored even when the sensitive-data detector flags it (the flag is kept).
// Reading verbs never create a store: a mistyped --db path is an error, not an empty store.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent_memory/memory_jsonl.h"
#include "agent_memory/sensitive_detector.h"
#include "cli/commands.h"
#include "engram/agent_memory.h"
#include "engram/error.h"
#include "engram/text_encoder.h"
#include "engram/thread_pool.h"

namespace engram::cli {
namespace {

using agent_memory::MemoryStore;

constexpr const char* kActor = "cli";

struct MemoryOptions {
  std::string db, pg, user;
  std::string embed_model;  // a `bert` GGUF: add stores embeddings, search uses them
  bool json = false;
};

void add_embed_model_option(CLI::App* cmd, MemoryOptions& o, const char* what) {
  cmd->add_option("--embed-model", o.embed_model, what)->check(CLI::ExistingFile);
}

// The embedding of `text` by --embed-model, after checking that the store's embeddings are
// that encoder's; empty without the flag.
std::vector<float> embed_for(const MemoryOptions& o, MemoryStore& store, std::string_view text) {
  if (o.embed_model.empty()) return {};
  auto encoder = TextEncoder::load(o.embed_model);
  agent_memory::claim_embedding_encoder(store, encoder->identity(),
                                        "--embed-model " + o.embed_model);
  ThreadPool pool(default_thread_count());
  const TextEncoder::Embedding e = encoder->embed(text, pool);
  if (e.truncated)
    fmt::print(stderr, "note: the text is longer than {} tokens; its beginning was embedded\n",
               encoder->config().n_ctx_train);
  return e.vector;
}

// Adds --db, --pg, --user to one verb.
void add_store_options(CLI::App* cmd, MemoryOptions& o) {
  auto* db = cmd->add_option("--db", o.db, "SQLite memory store (a file)");
  auto* pg = cmd->add_option("--pg", o.pg,
                             "PostgreSQL memory store, a postgresql:// URL (a password may come "
                             "from PGPASSWORD or ~/.pgpass instead of the URL)");
  db->excludes(pg);
  cmd->add_option("--user", o.user, "Whose memories")->required();
}

std::unique_ptr<MemoryStore> open_store(const MemoryOptions& o, std::string_view verb,
                                        bool may_create) {
  if (o.db.empty() && o.pg.empty())
    throw Error(fmt::format("memory {}: give the store with --db FILE or --pg URL", verb));
  if (!o.db.empty()) {
    if (!may_create && !std::filesystem::exists(o.db))
      throw Error(fmt::format("{}: no such memory store", o.db));
    return agent_memory::open_memory_store("sqlite:" + o.db);
  }
  return agent_memory::open_memory_store(o.pg);
}

// Memory text in a one-line listing: control characters (a newline in a summary) as spaces.
std::string one_line(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return s;
}

// User text echoed in an error message, shortened.
std::string shown(std::string_view s) {
  std::string t = one_line(std::string(s.substr(0, 60)));
  return "'" + t + (s.size() > 60 ? "...'" : "'");
}

std::string utc_time(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void add_list(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  CLI::App* cmd =
      memory->add_subcommand("list", "List a user's memories in the order they were added");
  add_store_options(cmd, *o);
  cmd->add_flag("--json", o->json, "One JSON object per line (the export format)");
  cmd->callback([o] {
    auto store = open_store(*o, "list", false);
    for (const auto& m : store->get_all(o->user)) {
      if (o->json)
        fmt::print("{}\n", agent_memory::memory_to_json_line(m));
      else
        fmt::print("{}\t{}\n", m.id, one_line(m.summary));
    }
  });
}

void add_add(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto text = std::make_shared<std::string>();
  auto conversation = std::make_shared<std::string>();
  CLI::App* cmd = memory->add_subcommand("add", "Remember a statement (an explicit request)");
  add_store_options(cmd, *o);
  cmd->add_option("text", *text, "What to remember")->required();
  cmd->add_option("--conversation", *conversation, "The conversation it came from");
  add_embed_model_option(cmd, *o, "Store the text's embedding by this bert GGUF (dense search)");
  cmd->callback([o, text, conversation] {
    agent_memory::NewMemory m;
    m.summary = *text;
    m.conversation = *conversation;
    m.explicit_request = true;
    const auto findings = agent_memory::detect_sensitive(*text);
    m.sensitive = findings.any();
    auto store = open_store(*o, "add", true);
    m.embedding = embed_for(*o, *store, *text);
    const auto added = store->add(o->user, m, kActor);
    std::string note;
    for (const auto& n : findings.names()) note += (note.empty() ? "" : ", ") + n;
    if (note.empty())
      fmt::print("added {}\n", added.id);
    else
      fmt::print("added {} (sensitive: {}; stored because you asked)\n", added.id, note);
  });
}

void add_forget(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto id = std::make_shared<int64_t>(0);
  auto text = std::make_shared<std::string>();
  CLI::App* cmd = memory->add_subcommand(
      "forget", "Forget a memory by id, or every memory whose text contains TEXT");
  add_store_options(cmd, *o);
  auto* id_opt = cmd->add_option("--id", *id, "The memory's id");
  auto* text_opt = cmd->add_option("text", *text, "Forget memories containing this text");
  id_opt->excludes(text_opt);
  cmd->callback([o, id, text, id_opt, text_opt] {
    if (!id_opt->count() && !text_opt->count())
      throw Error("memory forget: give --id ID or the TEXT to forget");
    auto store = open_store(*o, "forget", false);
    if (id_opt->count()) {
      if (!store->remove(o->user, *id, kActor))
        throw Error(
            fmt::format("memory forget: memory {} not found for user {}", *id, shown(o->user)));
      fmt::print("forgot memory {}\n", *id);
      return;
    }
    const auto ids = store->forget_matching(o->user, *text, kActor);
    if (ids.empty())
      throw Error(fmt::format("memory forget: no memory of user {} contains {}", shown(o->user),
                              shown(*text)));
    std::string list;
    for (int64_t i : ids) list += fmt::format(" {}", i);
    fmt::print("forgot {} {}:{}\n", ids.size(), ids.size() == 1 ? "memory" : "memories", list);
  });
}

void add_search(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto query = std::make_shared<std::string>();
  auto limit = std::make_shared<size_t>(5);
  CLI::App* cmd =
      memory->add_subcommand("search", "Full-text search of a user's memories, best first");
  add_store_options(cmd, *o);
  cmd->add_option("query", *query, "Words to look for (any may match)")->required();
  cmd->add_option("-n,--limit", *limit, "At most this many results")
      ->check(CLI::Range(size_t{1}, agent_memory::StoreLimits::kMaxSearchLimit))
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON object per line: {\"id\", \"score\", \"summary\"}");
  add_embed_model_option(cmd, *o,
                         "Hybrid search: full text and cosine over the embeddings this bert GGUF "
                         "made, fused by reciprocal rank");
  cmd->callback([o, query, limit] {
    auto store = open_store(*o, "search", false);
    const std::vector<float> q = embed_for(*o, *store, *query);
    const auto hits = q.empty() ? store->search(o->user, *query, *limit)
                                : agent_memory::hybrid_search(*store, o->user, *query, q, *limit);
    for (const auto& h : hits) {
      if (o->json) {
        nlohmann::ordered_json j;
        j["id"] = h.memory.id;
        j["score"] = h.score;
        j["summary"] = h.memory.summary;
        fmt::print("{}\n", j.dump());
      } else {
        fmt::print("{}\t{:.6g}\t{}\n", h.memory.id, h.score, one_line(h.memory.summary));
      }
    }
  });
}

void add_history(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto id = std::make_shared<int64_t>(0);
  CLI::App* cmd = memory->add_subcommand(
      "history", "Every change of one memory (a forgotten memory keeps its events, not its text)");
  add_store_options(cmd, *o);
  cmd->add_option("--id", *id, "The memory's id")->required();
  cmd->add_flag("--json", o->json, "One JSON object per line");
  cmd->callback([o, id] {
    auto store = open_store(*o, "history", false);
    const auto entries = store->history(o->user, *id);
    if (entries.empty())
      throw Error(
          fmt::format("memory history: memory {} not found for user {}", *id, shown(o->user)));
    for (const auto& e : entries) {
      if (o->json) {
        nlohmann::ordered_json j;
        j["memory_id"] = e.memory_id;
        j["event"] = agent_memory::event_name(e.event);
        j["old_text"] = e.old_text ? nlohmann::ordered_json(*e.old_text) : nullptr;
        j["new_text"] = e.new_text ? nlohmann::ordered_json(*e.new_text) : nullptr;
        j["actor"] = e.actor;
        j["at_ms"] = e.at_ms;
        fmt::print("{}\n", j.dump());
      } else {
        const std::string change = e.new_text ? one_line(*e.new_text)
                                              : (e.event == agent_memory::MemoryEvent::kDelete
                                                     ? std::string("(forgotten)")
                                                     : std::string("(text forgotten)"));
        fmt::print("{}\t{}\t{}\t{}\n", utc_time(e.at_ms), agent_memory::event_name(e.event),
                   one_line(e.actor), change);
      }
    }
  });
}

void add_wipe(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto yes = std::make_shared<bool>(false);
  CLI::App* cmd = memory->add_subcommand(
      "wipe", "Forget every memory of a user, with their conversation turns and reranker");
  add_store_options(cmd, *o);
  cmd->add_flag("--yes", *yes, "Confirm");
  cmd->callback([o, yes] {
    if (!*yes)
      throw Error(fmt::format("memory wipe: this forgets every memory of user {}; add --yes",
                              shown(o->user)));
    auto store = open_store(*o, "wipe", false);
    const size_t n = store->wipe(o->user, kActor);
    fmt::print("wiped {} {} of user {}\n", n, n == 1 ? "memory" : "memories", shown(o->user));
  });
}

void add_export(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = memory->add_subcommand("export", "Write a user's memories as JSON lines");
  add_store_options(cmd, *o);
  cmd->add_option("-o,--output", *out, "Write to this file instead of standard output");
  cmd->callback([o, out] {
    auto store = open_store(*o, "export", false);
    const auto memories = store->get_all(o->user);
    std::string text;
    for (const auto& m : memories) text += agent_memory::memory_to_json_line(m) + "\n";
    if (out->empty()) {
      fmt::print("{}", text);
      return;
    }
    // Written beside and renamed: a failed export never leaves half a file under the name.
    const std::string tmp = *out + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f) throw Error(fmt::format("{}: cannot write", *out));
      f << text;
      f.close();
      if (!f) throw Error(fmt::format("{}: write failed", *out));
    }
    std::error_code ec;
    std::filesystem::rename(tmp, *out, ec);
    if (ec) {
      const std::string why = ec.message();
      std::filesystem::remove(tmp, ec);  // no half-written export left beside it either
      throw Error(fmt::format("{}: cannot write: {}", *out, why));
    }
    fmt::print(stderr, "exported {} memories to {}\n", memories.size(), *out);
  });
}

void add_import(CLI::App* memory) {
  auto o = std::make_shared<MemoryOptions>();
  auto file = std::make_shared<std::string>();
  CLI::App* cmd = memory->add_subcommand(
      "import", "Add memories from JSON lines (all or none; each gets a new id)");
  add_store_options(cmd, *o);
  cmd->add_option("file", *file, "JSON lines, as export writes them ('-': standard input)")
      ->required();
  cmd->callback([o, file] {
    std::ifstream f;
    std::istream* in = &std::cin;
    if (*file != "-") {
      if (std::filesystem::is_directory(*file))
        throw Error(fmt::format("{}: is a directory", *file));
      f.open(*file, std::ios::binary);
      if (!f) throw Error(fmt::format("{}: cannot open", *file));
      in = &f;
    }
    std::vector<agent_memory::NewMemory> memories;
    std::string line;
    size_t n = 0;
    while (std::getline(*in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        memories.push_back(agent_memory::memory_from_json_line(line));
      } catch (const Error& e) {
        throw Error(fmt::format("{}:{}: {}", *file, n, e.what()));
      }
      if (memories.size() > 1000000)
        throw Error(fmt::format("{}: more than 1000000 memories in one import", *file));
    }
    auto store = open_store(*o, "import", true);
    store->add_all(o->user, memories, "import");
    fmt::print("imported {} {}\n", memories.size(), memories.size() == 1 ? "memory" : "memories");
  });
}

}  // namespace

void add_memory_command(CLI::App& app) {
  CLI::App* memory = app.add_subcommand(
      "memory",
      "A user's agent memories: list, add, forget, search, history, wipe, export, import");
  memory->require_subcommand(1);
  add_list(memory);
  add_add(memory);
  add_forget(memory);
  add_search(memory);
  add_history(memory);
  add_wipe(memory);
  add_export(memory);
  add_import(memory);
}

}  // namespace engram::cli
