#include "server/api_response.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <random>

#include "server/api_error.h"

namespace engram::server {

namespace {

using json = nlohmann::ordered_json;

// Generated text may end mid-character when a reply is cut: replaced, never an exception.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json finish_value(FinishReason r) {
  if (r == FinishReason::None) return nullptr;
  return finish_reason_name(r);
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json head_json(const ResponseHead& h, const char* object) {
  json j = {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
  if (!h.conversation.empty()) j["conversation"] = h.conversation;
  return j;
}

}  // namespace

std::string error_body(const std::string& message, const std::string& type,
                       const std::string& param, const std::string& code) {
  json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  return dump(json{{"error", e}});
}

std::string new_id(const std::string& prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof kChars - 1)];
  return id;
}

std::string completion_body(const ResponseHead& h, const std::string& text, FinishReason finish,
                            const Usage& usage) {
  json j = head_json(h, h.chat ? "chat.completion" : "text_completion");
  json choice = {{"index", 0}};
  if (h.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_value(finish);
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string chunk_body(const ResponseHead& h, const std::string* text, bool first,
                       FinishReason finish, bool include_usage) {
  json j = head_json(h, h.chat ? "chat.completion.chunk" : "text_completion");
  json choice = {{"index", 0}};
  if (h.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (text) delta["content"] = *text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text ? *text : "";
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_value(finish);
  j["choices"] = json::array({choice});
  if (include_usage) j["usage"] = nullptr;
  return dump(j);
}

std::string usage_chunk(const ResponseHead& h, const Usage& usage) {
  json j = head_json(h, h.chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = json::array();
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string embeddings_body(const std::string& model,
                            const std::vector<std::vector<float>>& embeddings,
                            const std::string& encoding_format, int64_t prompt_tokens) {
  json data = json::array();
  for (size_t i = 0; i < embeddings.size(); ++i) {
    json item = {{"object", "embedding"}, {"index", i}};
    if (encoding_format == "base64") {
      // Little-endian float32s in base64, as OpenAI sends them.
      static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const auto& v = embeddings[i];
      std::string raw(v.size() * 4, '\0');
      std::memcpy(raw.data(), v.data(), raw.size());
      std::string out;
      for (size_t k = 0; k < raw.size(); k += 3) {
        const uint32_t b0 = uint8_t(raw[k]);
        const uint32_t b1 = k + 1 < raw.size() ? uint8_t(raw[k + 1]) : 0;
        const uint32_t b2 = k + 2 < raw.size() ? uint8_t(raw[k + 2]) : 0;
        const uint32_t w = (b0 << 16) | (b1 << 8) | b2;
        out += kB64[(w >> 18) & 63];
        out += kB64[(w >> 12) & 63];
        out += k + 1 < raw.size() ? kB64[(w >> 6) & 63] : '=';
        out += k + 2 < raw.size() ? kB64[w & 63] : '=';
      }
      item["embedding"] = out;
    } else {
      item["embedding"] = embeddings[i];
    }
    data.push_back(std::move(item));
  }
  json j = {{"object", "list"},
            {"data", data},
            {"model", model},
            {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
  return dump(j);
}

std::string models_body(const std::string& model, int64_t created) {
  json m = {{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "engram"}};
  return dump(json{{"object", "list"}, {"data", json::array({m})}});
}

}  // namespace engram::server
