// Checks on everything a caller hands the memory store, before any of it reaches SQL: sizes
// (StoreLimits), well-formed UTF-8 without NUL (PostgreSQL's text cannot hold either), no
// control characters in names, finite embeddings, a JSON array of turns. Each failure is an
// engram::Error naming the field and what was wrong with it (never echoing the whole value).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "engram/agent_memory.h"

namespace engram::agent_memory {

void check_user(std::string_view user);
void check_actor(std::string_view actor);
void check_conversation(std::string_view conversation);
void check_summary(std::string_view summary);
void check_new_memory(const NewMemory& m);
void check_embedding(const std::vector<float>& e);
void check_query(std::string_view query, size_t limit);
void check_turn(const Turn& t);
void check_id(int64_t id);

// Turns JSON arrays joined ([a] + [b] -> [a, b]), for a merge.
std::string join_turns(std::string_view a, std::string_view b);

}  // namespace engram::agent_memory
