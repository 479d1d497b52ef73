#include "agent_memory/memory_jsonl.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "agent_memory/store_input.h"
#include "engram/error.h"

namespace engram::agent_memory {

std::string memory_to_json_line(const Memory& m) {
  nlohmann::ordered_json j;
  j["id"] = m.id;
  j["summary"] = m.summary;
  j["turns"] = nlohmann::ordered_json::parse(m.turns_json, nullptr, false);
  if (j["turns"].is_discarded()) j["turns"] = nlohmann::ordered_json::array();
  j["embedding"] = m.embedding;
  j["conversation"] = m.conversation;
  j["sensitive"] = m.sensitive;
  j["explicit"] = m.explicit_request;
  j["created_ms"] = m.created_ms;
  j["updated_ms"] = m.updated_ms;
  return j.dump();
}

NewMemory memory_from_json_line(std::string_view line) {
  if (line.size() > kMaxJsonLineBytes)
    throw Error(
        fmt::format("line is {} bytes, more than the limit of {}", line.size(), kMaxJsonLineBytes));
  const auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) throw Error("not JSON");
  if (!j.is_object()) throw Error("not a JSON object");
  NewMemory m;
  bool has_summary = false;
  for (const auto& [key, v] : j.items()) {
    if (key == "summary") {
      if (!v.is_string()) throw Error("'summary' is not a string");
      m.summary = v.get<std::string>();
      has_summary = true;
    } else if (key == "turns") {
      if (!v.is_array()) throw Error("'turns' is not an array");
      m.turns_json = v.dump();
    } else if (key == "embedding") {
      if (!v.is_array()) throw Error("'embedding' is not an array");
      if (v.size() > StoreLimits::kMaxEmbeddingDims)
        throw Error(fmt::format("'embedding' has {} dimensions, more than the limit of {}",
                                v.size(), StoreLimits::kMaxEmbeddingDims));
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_number()) throw Error(fmt::format("'embedding'[{}] is not a number", i));
        const double d = v[i].get<double>();
        if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
          throw Error(fmt::format("'embedding'[{}] is outside the float range", i));
        m.embedding.push_back(static_cast<float>(d));
      }
    } else if (key == "conversation") {
      if (!v.is_string()) throw Error("'conversation' is not a string");
      m.conversation = v.get<std::string>();
    } else if (key == "sensitive" || key == "explicit") {
      if (!v.is_boolean()) throw Error(fmt::format("'{}' is not true or false", key));
      (key == "sensitive" ? m.sensitive : m.explicit_request) = v.get<bool>();
    } else if (key == "id" || key == "created_ms" || key == "updated_ms") {
      if (!v.is_number_integer()) throw Error(fmt::format("'{}' is not an integer", key));
    } else {
      throw Error(fmt::format("unknown field '{}'", key.substr(0, 64)));
    }
  }
  if (!has_summary) throw Error("no 'summary'");
  check_new_memory(m);
  return m;
}

}  // namespace engram::agent_memory
