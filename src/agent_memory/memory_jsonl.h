// Memories as JSON lines, the format of `engram memory export` and `import`: one object per
// line with the fields
//   id, created_ms, updated_ms   written by export, ignored by import (imports get new ids)
//   summary                      string, required
//   turns                        array (the dialogue turns the memory came from), default []
//   embedding                    array of numbers, default []
//   conversation                 string, default ""
//   sensitive, explicit          booleans, default false
// Any other field is an error (a misspelt field would otherwise drop data silently).
#pragma once

#include <string>
#include <string_view>

#include "engram/agent_memory.h"

namespace engram::agent_memory {

std::string memory_to_json_line(const Memory& m);  // no trailing newline

// Parses and checks one line (store_input.h's checks: sizes, UTF-8, finite numbers). Throws
// engram::Error naming the field; the caller adds the file and line.
NewMemory memory_from_json_line(std::string_view line);

constexpr size_t kMaxJsonLineBytes = 4 * 1024 * 1024;

}  // namespace engram::agent_memory
