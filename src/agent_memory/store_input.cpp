#include "agent_memory/store_input.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engram/error.h"
#include "tokenizer/unicode.h"

namespace engram::agent_memory {
namespace {

void check_text(std::string_view what, std::string_view s, size_t max_bytes) {
  if (s.size() > max_bytes)
    throw Error(
        fmt::format("{} is {} bytes, more than the limit of {}", what, s.size(), max_bytes));
  if (s.find('\0') != std::string_view::npos)
    throw Error(fmt::format("{} contains a NUL byte", what));
  if (!tok::is_valid_utf8(s)) throw Error(fmt::format("{} is not valid UTF-8", what));
}

// Names (users, actors, conversations) are shown in listings and logs: no control characters.
void check_name(std::string_view what, std::string_view s, size_t max_bytes, bool may_be_empty) {
  if (s.empty() && !may_be_empty) throw Error(fmt::format("{} is empty", what));
  check_text(what, s, max_bytes);
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw Error(fmt::format("{} contains a control character", what));
}

}  // namespace

void check_user(std::string_view user) {
  check_name("user", user, StoreLimits::kMaxUserBytes, false);
}

void check_actor(std::string_view actor) {
  check_name("actor", actor, StoreLimits::kMaxActorBytes, false);
}

void check_conversation(std::string_view conversation) {
  check_name("conversation id", conversation, StoreLimits::kMaxConversationBytes, true);
}

void check_summary(std::string_view summary) {
  if (summary.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw Error("memory text is empty");
  check_text("memory text", summary, StoreLimits::kMaxSummaryBytes);
}

void check_embedding(const std::vector<float>& e) {
  if (e.size() > StoreLimits::kMaxEmbeddingDims)
    throw Error(fmt::format("embedding has {} dimensions, more than the limit of {}", e.size(),
                            StoreLimits::kMaxEmbeddingDims));
  for (size_t i = 0; i < e.size(); ++i)
    if (!std::isfinite(e[i])) throw Error(fmt::format("embedding[{}] is not finite", i));
}

void check_new_memory(const NewMemory& m) {
  check_summary(m.summary);
  check_text("memory turns", m.turns_json, StoreLimits::kMaxTurnsJsonBytes);
  const auto turns = nlohmann::json::parse(m.turns_json, nullptr, false);
  if (turns.is_discarded() || !turns.is_array()) throw Error("memory turns are not a JSON array");
  check_embedding(m.embedding);
  check_conversation(m.conversation);
}

void check_query(std::string_view query, size_t limit) {
  check_text("search query", query, StoreLimits::kMaxQueryBytes);
  if (limit < 1 || limit > StoreLimits::kMaxSearchLimit)
    throw Error(
        fmt::format("search limit {} is outside 1..{}", limit, StoreLimits::kMaxSearchLimit));
}

void check_turn(const Turn& t) {
  if (t.index < 0) throw Error(fmt::format("turn index {} is negative", t.index));
  check_name("turn role", t.role, 64, false);
  check_text("turn text", t.text, StoreLimits::kMaxTurnTextBytes);
}

void check_id(int64_t id) {
  if (id <= 0) throw Error(fmt::format("memory id {} is not a valid id", id));
}

std::string join_turns(std::string_view a, std::string_view b) {
  auto ja = nlohmann::json::parse(a, nullptr, false);
  const auto jb = nlohmann::json::parse(b, nullptr, false);
  if (ja.is_discarded() || !ja.is_array() || jb.is_discarded() || !jb.is_array())
    throw Error("memory turns are not a JSON array");
  for (const auto& t : jb) ja.push_back(t);
  std::string out = ja.dump();
  if (out.size() > StoreLimits::kMaxTurnsJsonBytes)
    throw Error(fmt::format("merged memory turns would be {} bytes, more than the limit of {}",
                            out.size(), StoreLimits::kMaxTurnsJsonBytes));
  return out;
}

}  // namespace engram::agent_memory
