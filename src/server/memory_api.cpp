#include "server/memory_api.h"

#include <fmt/format.h>

#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

#include "agent_memory/sensitive_detector.h"
#include "engram/error.h"

namespace engram::server {
namespace {

using json = nlohmann::json;
using agent_memory::Memory;

constexpr const char* kActor = "api";
constexpr size_t kMaxMessages = 256;
constexpr size_t kMaxSearchResults = 100;

json parse_object(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded())
    throw ApiError(400, "invalid_request_error", "the request body is not valid JSON");
  if (!j.is_object())
    throw ApiError(400, "invalid_request_error", "the request body must be a JSON object");
  return j;
}

// The fields of `j` must be among `known`.
void refuse_unknown(const json& j, std::initializer_list<const char*> known) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok)
      throw bad_field(it.key(),
                      fmt::format("unrecognized request argument: {}", it.key().substr(0, 64)));
  }
}

std::string string_field(const json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw bad_field(key, fmt::format("{} is required", key));
    return "";
  }
  if (!it->is_string()) throw bad_field(key, fmt::format("{} must be a string", key));
  return it->get<std::string>();
}

std::string iso_time(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

json memory_json(const Memory& m, const std::string& user) {
  return {{"id", std::to_string(m.id)},
          {"memory", m.summary},
          {"user_id", user},
          {"created_at", iso_time(m.created_ms)},
          {"updated_at", iso_time(m.updated_ms)},
          {"conversation", m.conversation},
          {"sensitive", m.sensitive},
          {"explicit_request", m.explicit_request}};
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A `user_id` given by the caller must be the key's own user.
void check_user_id(const std::string& given, const std::string& user) {
  if (!given.empty() && given != user)
    throw ApiError(403, "permission_error",
                   "user_id names another user: an API key reads and writes only its own "
                   "user's memories",
                   "user_id", "user_mismatch");
}

ApiError memory_not_found(int64_t id) {
  return ApiError(404, "invalid_request_error", fmt::format("memory '{}' not found", id),
                  "memory_id", "memory_not_found");
}

// What the store refuses in a caller's input (too long, not UTF-8, ...) is the caller's error.
template <class Fn>
auto store_call(const char* field, Fn&& fn) {
  try {
    return fn();
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw bad_field(field, e.what());
  }
}

}  // namespace

MemoryAddRequest parse_memory_add(std::string_view body) {
  const json j = parse_object(body);
  refuse_unknown(j, {"messages", "infer", "user_id", "metadata"});
  MemoryAddRequest r;
  r.user_id = string_field(j, "user_id", false);
  if (auto it = j.find("infer"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) throw bad_field("infer", "infer must be a boolean");
    r.infer = it->get<bool>();
  }
  if (auto it = j.find("metadata"); it != j.end() && !it->is_null() && !it->is_object())
    throw bad_field("metadata", "metadata must be an object");
  auto m = j.find("messages");
  if (m == j.end() || m->is_null()) throw bad_field("messages", "messages is required");
  if (m->is_string()) {
    r.messages.push_back({"user", m->get<std::string>()});
  } else if (m->is_array()) {
    if (m->size() > kMaxMessages)
      throw bad_field("messages", fmt::format("messages holds {} messages, the limit is {}",
                                              m->size(), kMaxMessages));
    for (size_t i = 0; i < m->size(); ++i) {
      const json& x = (*m)[i];
      const std::string at = fmt::format("messages[{}]", i);
      if (!x.is_object()) throw bad_field(at, at + " must be an object");
      for (auto f = x.begin(); f != x.end(); ++f)
        if (f.key() != "role" && f.key() != "content" && f.key() != "name")
          throw bad_field(at, fmt::format("{}: unrecognized field", at));
      auto role = x.find("role");
      auto content = x.find("content");
      if (role == x.end() || !role->is_string())
        throw bad_field(at + ".role", at + ".role must be a string");
      const std::string rs = role->get<std::string>();
      if (rs != "user" && rs != "assistant" && rs != "system")
        throw bad_field(at + ".role", at + ".role must be user, assistant or system");
      if (content == x.end() || !content->is_string())
        throw bad_field(at + ".content", at + ".content must be a string");
      if (rs != "system") r.messages.push_back({rs, content->get<std::string>()});
    }
  } else {
    throw bad_field("messages", "messages must be a string or an array of messages");
  }
  bool any_user = false;
  for (const auto& t : r.messages) any_user = any_user || (t.role == "user" && !t.text.empty());
  if (!any_user) throw bad_field("messages", "messages must hold a non-empty user message");
  return r;
}

MemorySearchRequest parse_memory_search(std::string_view body) {
  const json j = parse_object(body);
  refuse_unknown(j, {"query", "limit", "top_k", "user_id", "filters"});
  MemorySearchRequest r;
  r.query = string_field(j, "query", true);
  if (r.query.empty()) throw bad_field("query", "query must not be empty");
  r.user_id = string_field(j, "user_id", false);
  for (const char* k : {"limit", "top_k"}) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number_integer() && !it->is_number_unsigned())
      throw bad_field(k, fmt::format("{} must be an integer", k));
    const int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)
                          ? INT64_MAX
                          : it->get<int64_t>();
    if (v < 1 || v > int64_t(kMaxSearchResults))
      throw bad_field(k, fmt::format("{} must be between 1 and {}", k, kMaxSearchResults));
    r.limit = static_cast<size_t>(v);
  }
  if (auto it = j.find("filters"); it != j.end() && !it->is_null()) {
    // mem0's filters scope a search by user, agent or run; here the key's user is the scope.
    if (!it->is_object()) throw bad_field("filters", "filters must be an object");
    for (auto f = it->begin(); f != it->end(); ++f) {
      if (f.key() != "user_id")
        throw bad_field("filters", "filters may only name user_id (the key's own user)");
      if (!f->is_string()) throw bad_field("filters.user_id", "filters.user_id must be a string");
      if (r.user_id.empty()) r.user_id = f->get<std::string>();
      if (f->get<std::string>() != r.user_id)
        throw bad_field("filters.user_id", "filters.user_id and user_id differ");
    }
  }
  return r;
}

MemoryUpdateRequest parse_memory_update(std::string_view body) {
  const json j = parse_object(body);
  refuse_unknown(j, {"text", "user_id", "metadata"});
  MemoryUpdateRequest r;
  r.text = string_field(j, "text", true);
  if (r.text.empty()) throw bad_field("text", "text must not be empty");
  r.user_id = string_field(j, "user_id", false);
  return r;
}

MemoryEndRequest parse_memory_end(std::string_view body) {
  MemoryEndRequest r;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return r;
  const json j = parse_object(body);
  refuse_unknown(j, {"conversation"});
  r.conversation = string_field(j, "conversation", false);
  return r;
}

int64_t parse_memory_id(std::string_view text) {
  bool ok = !text.empty() && text.size() <= 16;
  int64_t v = 0;
  for (char c : text) {
    ok = ok && c >= '0' && c <= '9';
    if (ok) v = v * 10 + (c - '0');
  }
  if (!ok || v <= 0)
    throw bad_field("memory_id", "a memory id is a positive integer of at most 16 digits");
  return v;
}

std::string memory_location(const std::string& db, const std::string& pg) {
  if (!db.empty() && !pg.empty()) throw Error("give --memory-db or --memory-pg, not both");
  if (!db.empty()) return "sqlite:" + db;
  return pg;
}

MemoryApi::MemoryApi(agent_memory::MemoryStore& store, WithModel run_with_model,
                     EndConversation end)
    : store_(store), with_model_(std::move(run_with_model)), end_(std::move(end)) {}

MemoryResponse MemoryApi::add(const std::string& user, std::string_view body) {
  const MemoryAddRequest r = parse_memory_add(body);
  check_user_id(r.user_id, user);
  std::map<int64_t, std::string> before;
  for (const Memory& m : store_.get_all(user)) before[m.id] = m.summary;
  with_model_([&](agent_memory::MemoryModel& model) {
    agent_memory::MemorySessionParams p;
    p.actor = kActor;
    p.ask_model_if_sensitive = true;
    agent_memory::MemorySession s(&store_, user, model, p);
    if (r.infer) {
      (void)s.reflect(r.messages);
      return;
    }
    // Each user message is stored as said (an explicit request).
    std::vector<std::string> texts;
    for (const auto& t : r.messages)
      if (t.role == "user" && !t.text.empty()) texts.push_back(t.text);
    for (size_t i = 0; i < texts.size(); ++i) {
      try {
        s.remember(texts[i], texts[i]);
      } catch (const Error& e) {
        throw bad_field("messages", fmt::format("message {}: {}", i, e.what()));
      }
    }
  });
  json results = json::array();
  for (const Memory& m : store_.get_all(user)) {
    auto it = before.find(m.id);
    if (it == before.end()) {
      json x = memory_json(m, user);
      x["event"] = "ADD";
      results.push_back(std::move(x));
    } else if (it->second != m.summary) {
      json x = memory_json(m, user);
      x["event"] = "MERGE";
      x["previous_memory"] = it->second;
      results.push_back(std::move(x));
    }
  }
  return {200, dump({{"results", results}})};
}

MemoryResponse MemoryApi::list(const std::string& user, std::string_view user_id_param) {
  check_user_id(std::string(user_id_param), user);
  json results = json::array();
  for (const Memory& m : store_.get_all(user)) results.push_back(memory_json(m, user));
  return {200, dump({{"results", results}})};
}

MemoryResponse MemoryApi::wipe(const std::string& user, std::string_view user_id_param) {
  check_user_id(std::string(user_id_param), user);
  const size_t n = store_.wipe(user, kActor);
  return {200, dump({{"message", "All memories deleted"}, {"deleted", n}})};
}

MemoryResponse MemoryApi::get(const std::string& user, std::string_view id_text) {
  const int64_t id = parse_memory_id(id_text);
  const auto m = store_.get(user, id);
  if (!m) throw memory_not_found(id);
  return {200, dump(memory_json(*m, user))};
}

MemoryResponse MemoryApi::update(const std::string& user, std::string_view id_text,
                                 std::string_view body) {
  const int64_t id = parse_memory_id(id_text);
  const MemoryUpdateRequest r = parse_memory_update(body);
  check_user_id(r.user_id, user);
  if (!store_.get(user, id)) throw memory_not_found(id);
  std::vector<float> embedding;
  with_model_([&](agent_memory::MemoryModel& model) { embedding = model.embed(r.text); });
  const Memory m = store_call("text", [&] {
    return store_.update(user, id, r.text, embedding.empty() ? nullptr : &embedding, kActor);
  });
  return {200, dump(memory_json(m, user))};
}

MemoryResponse MemoryApi::remove(const std::string& user, std::string_view id_text) {
  const int64_t id = parse_memory_id(id_text);
  if (!store_.remove(user, id, kActor)) throw memory_not_found(id);
  return {200, dump({{"message", "Memory deleted successfully!"}, {"id", std::to_string(id)}})};
}

MemoryResponse MemoryApi::history(const std::string& user, std::string_view id_text) {
  const int64_t id = parse_memory_id(id_text);
  const auto h = store_.history(user, id);
  if (h.empty()) throw memory_not_found(id);
  json out = json::array();
  for (const auto& e : h) {
    out.push_back({{"memory_id", std::to_string(e.memory_id)},
                   {"event", agent_memory::event_name(e.event)},
                   {"old_memory", e.old_text ? json(*e.old_text) : json(nullptr)},
                   {"new_memory", e.new_text ? json(*e.new_text) : json(nullptr)},
                   {"actor", e.actor},
                   {"created_at", iso_time(e.at_ms)}});
  }
  return {200, dump(out)};
}

MemoryResponse MemoryApi::search(const std::string& user, std::string_view body) {
  const MemorySearchRequest r = parse_memory_search(body);
  check_user_id(r.user_id, user);
  std::vector<agent_memory::SearchHit> hits;
  with_model_([&](agent_memory::MemoryModel& model) {
    std::vector<float> q = model.embed(r.query);
    hits = store_call(
        "query", [&] { return agent_memory::hybrid_search(store_, user, r.query, q, r.limit); });
  });
  json results = json::array();
  for (const auto& h : hits) {
    json x = memory_json(h.memory, user);
    x["score"] = h.score;
    results.push_back(std::move(x));
  }
  return {200, dump({{"results", results}})};
}

MemoryResponse MemoryApi::end(const std::string& user, std::string_view body) {
  const MemoryEndRequest r = parse_memory_end(body);
  if (!r.conversation.empty()) {
    bool ok = r.conversation.size() <= 64;
    for (char c : r.conversation)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
    if (!ok)
      throw bad_field("conversation",
                      "conversation must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -");
  }
  const agent_memory::ReflectionReport rep = end_(user, r.conversation);
  return {200, dump({{"object", "memory.reflection"},
                     {"conversation", r.conversation},
                     {"extracted", rep.extracted},
                     {"added", rep.added},
                     {"merged", rep.merged},
                     {"unchanged", rep.unchanged},
                     {"skipped_sensitive", rep.skipped_sensitive},
                     {"sensitive_by_model", rep.sensitive_by_model},
                     {"skipped_forgotten", rep.skipped_forgotten},
                     {"turns_left_out", rep.turns_left_out},
                     {"errors", rep.errors}})};
}

}  // namespace engram::server
