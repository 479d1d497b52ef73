#include "server/api_request.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace engram::server {

namespace {

using json = nlohmann::json;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    default:
      return "a value";
  }
}

json parse_body(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again for the message that says where (the first pass keeps the common path free
    // of exceptions).
    try {
      const json again = json::parse(body);
      (void)again;
    } catch (const json::exception& e) {
      throw ApiError(400, "invalid_request_error",
                     fmt::format("the request body is not valid JSON: {}", e.what()));
    }
    throw ApiError(400, "invalid_request_error", "the request body is not valid JSON");
  }
  if (!j.is_object()) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the request body must be a JSON object, got {}", type_name(j)));
  }
  return j;
}

// Reads fields of one JSON object, remembering which were read: what is left is unknown.
class Fields {
 public:
  Fields(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  const json* get(const char* key) {
    seen_.push_back(key);
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string path(const std::string& key) const {
    return where_.empty() ? key : where_ + "." + key;
  }

  std::string string(const char* key, const std::string& fallback = "") {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_string()) throw wrong_type(key, *v, "a string");
    return v->get<std::string>();
  }
  bool boolean(const char* key, bool fallback) {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_boolean()) throw wrong_type(key, *v, "a boolean");
    return v->get<bool>();
  }
  double number(const char* key, double fallback, double lo, double hi) {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_number()) throw wrong_type(key, *v, "a number");
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi)) {
      throw bad_field(path(key), fmt::format("{} must be between {} and {}, got {}", path(key), lo,
                                             hi, v->dump()));
    }
    return x;
  }
  int64_t integer(const char* key, int64_t fallback, int64_t lo, int64_t hi) {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_number_integer() && !v->is_number_unsigned()) {
      throw wrong_type(key, *v, "an integer");
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) {
      throw bad_field(path(key), fmt::format("{} is out of range: {}", path(key), v->dump()));
    }
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) {
      throw bad_field(path(key),
                      fmt::format("{} must be between {} and {}, got {}", path(key), lo, hi, x));
    }
    return x;
  }
  // Fields the caller accepts and ignores (they change nothing engram does).
  void ignore(std::initializer_list<const char*> keys) {
    for (const char* k : keys) seen_.push_back(k);
  }
  void refuse_unknown() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (std::find(seen_.begin(), seen_.end(), it.key()) == seen_.end()) {
        throw bad_field(path(it.key()),
                        fmt::format("unrecognized request argument: {}", path(it.key())));
      }
    }
  }
  ApiError wrong_type(const std::string& key, const json& v, const char* want) const {
    return bad_field(path(key),
                     fmt::format("{} must be {}, got {}", path(key), want, type_name(v)));
  }

 private:
  const json& obj_;
  std::string where_;
  std::vector<std::string> seen_;
};

std::string message_content(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    throw bad_field(where, fmt::format("{} must be a string or an array of text parts, got {}",
                                       where, type_name(content)));
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", where, i);
    const json& part = content[i];
    if (!part.is_object()) {
      throw bad_field(at, fmt::format("{} must be an object, got {}", at, type_name(part)));
    }
    Fields f(part, at);
    const std::string type = f.string("type");
    if (type != "text") {
      throw bad_field(at + ".type",
                      fmt::format("{}.type '{}' is not supported: only text parts are", at, type));
    }
    const json* t = f.get("text");
    if (!t || !t->is_string()) throw bad_field(at + ".text", at + ".text must be a string");
    text += t->get<std::string>();
    f.refuse_unknown();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(Fields& top, const RequestLimits& limits) {
  const json* m = top.get("messages");
  if (!m) throw bad_field("messages", "messages is required");
  if (!m->is_array()) throw top.wrong_type("messages", *m, "an array");
  if (m->empty()) throw bad_field("messages", "messages must hold at least one message");
  if (m->size() > size_t(limits.max_messages)) {
    throw bad_field("messages", fmt::format("messages holds {} messages, the limit is {}",
                                            m->size(), limits.max_messages));
  }
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string at = fmt::format("messages[{}]", i);
    const json& msg = (*m)[i];
    if (!msg.is_object()) {
      throw bad_field(at, fmt::format("{} must be an object, got {}", at, type_name(msg)));
    }
    Fields f(msg, at);
    std::string role = f.string("role");
    if (role.empty()) throw bad_field(at + ".role", at + ".role is required");
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant") {
      throw bad_field(at + ".role",
                      fmt::format("{}.role '{}' is not supported (system, developer, user, "
                                  "assistant)",
                                  at, role));
    }
    const json* content = f.get("content");
    if (!content) throw bad_field(at + ".content", at + ".content is required");
    out.push_back({role, message_content(*content, at + ".content")});
    f.ignore({"name"});
    f.refuse_unknown();
  }
  return out;
}

std::vector<std::string> parse_stop(Fields& f, const RequestLimits& limits) {
  const json* s = f.get("stop");
  if (!s) return {};
  std::vector<std::string> out;
  if (s->is_string()) {
    out.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (size_t i = 0; i < s->size(); ++i) {
      if (!(*s)[i].is_string()) {
        throw bad_field("stop", fmt::format("stop[{}] must be a string", i));
      }
      out.push_back((*s)[i].get<std::string>());
    }
  } else {
    throw f.wrong_type("stop", *s, "a string or an array of strings");
  }
  if (out.size() > size_t(limits.max_stops)) {
    throw bad_field("stop", fmt::format("stop holds {} strings, the limit is {}", out.size(),
                                        limits.max_stops));
  }
  for (const std::string& x : out) {
    if (x.empty()) throw bad_field("stop", "stop strings must not be empty");
    if (x.size() > limits.max_stop_bytes) {
      throw bad_field("stop", fmt::format("a stop string is {} bytes, the limit is {}", x.size(),
                                          limits.max_stop_bytes));
    }
  }
  return out;
}

// The fields chat and completions share: sampling, limits, streaming, the engram extension.
void parse_common(Fields& f, GenerationRequest& r, const RequestLimits& limits, bool chat) {
  r.model = f.string("model");
  SamplerParams& s = r.sampling;
  // OpenAI's defaults: temperature 1, nucleus off; engram's top-k and min-p are off unless
  // asked for (they are not OpenAI fields).
  s.temperature = static_cast<float>(f.number("temperature", 1.0, 0.0, 2.0));
  s.top_p = static_cast<float>(f.number("top_p", 1.0, 0.0, 1.0));
  s.min_p = static_cast<float>(f.number("min_p", 0.0, 0.0, 1.0));
  s.top_k = static_cast<int>(f.integer("top_k", 0, 0, 1 << 20));
  s.presence_penalty = static_cast<float>(f.number("presence_penalty", 0.0, -2.0, 2.0));
  s.frequency_penalty = static_cast<float>(f.number("frequency_penalty", 0.0, -2.0, 2.0));
  s.repeat_penalty = 1.0f;
  if (const json* seed = f.get("seed")) {
    if (!seed->is_number_integer() && !seed->is_number_unsigned()) {
      throw f.wrong_type("seed", *seed, "an integer");
    }
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                        : static_cast<uint64_t>(seed->get<int64_t>());
    r.seeded = true;
  }
  int64_t max_tokens = f.integer("max_tokens", 0, 1, limits.max_tokens);
  if (chat) {
    const int64_t mct = f.integer("max_completion_tokens", 0, 1, limits.max_tokens);
    if (mct > 0) max_tokens = mct;
  }
  r.max_tokens = static_cast<int>(max_tokens);
  r.stop = parse_stop(f, limits);
  const int64_t n = f.integer("n", 1, INT64_MIN, INT64_MAX);
  if (n != 1) {
    throw bad_field("n",
                    fmt::format("n must be 1: one choice per request is supported, got {}", n));
  }
  r.stream = f.boolean("stream", false);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) throw f.wrong_type("stream_options", *so, "an object");
    Fields o(*so, "stream_options");
    r.include_usage = o.boolean("include_usage", false);
    o.ignore({"include_obfuscation"});
    o.refuse_unknown();
  }
  r.user = f.string("user");
  if (const json* c = f.get("conversation")) {
    if (!c->is_string()) throw f.wrong_type("conversation", *c, "a string");
    r.conversation = c->get<std::string>();
    check_conversation_id(r.conversation, "conversation");
  }
  if (const json* lp = f.get("logprobs")) {
    if (!(lp->is_boolean() && !lp->get<bool>())) {
      throw bad_field("logprobs", "logprobs are not supported");
    }
  }
  if (f.get("logit_bias")) throw bad_field("logit_bias", "logit_bias is not supported");
  // Fields that change nothing here (bookkeeping on OpenAI's side).
  f.ignore({"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"});
}

}  // namespace

void check_conversation_id(const std::string& id, const std::string& param) {
  bool ok = !id.empty() && id.size() <= 64;
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-');
  }
  if (!ok) {
    throw bad_field(param,
                    fmt::format("{} must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -", param));
  }
}

GenerationRequest parse_chat_request(std::string_view body, const RequestLimits& limits) {
  const json j = parse_body(body);
  Fields f(j, "");
  GenerationRequest r;
  r.kind = GenerationRequest::Kind::Chat;
  r.messages = parse_messages(f, limits);
  parse_common(f, r, limits, true);
  if (const json* rf = f.get("response_format")) {
    if (!rf->is_object()) throw f.wrong_type("response_format", *rf, "an object");
    Fields o(*rf, "response_format");
    const std::string type = o.string("type");
    if (type == "json_schema") {
      const json* js = o.get("json_schema");
      if (!js || !js->is_object()) {
        throw bad_field("response_format.json_schema",
                        "response_format.json_schema must be an object with a schema");
      }
      Fields jf(*js, "response_format.json_schema");
      (void)jf.string("name");
      const json* schema = jf.get("schema");
      if (!schema || !(schema->is_object() || schema->is_boolean())) {
        throw bad_field("response_format.json_schema.schema",
                        "response_format.json_schema.schema must be a JSON Schema object");
      }
      r.json_schema = schema->dump();
      jf.boolean("strict", false);  // the output always follows the schema
      jf.ignore({"description"});
      jf.refuse_unknown();
    } else if (type != "text" && type != "json_object") {
      throw bad_field("response_format.type",
                      fmt::format("response_format.type '{}' is not one of text, json_object, "
                                  "json_schema",
                                  type));
    }
    r.response_format = type;
    o.refuse_unknown();
  }
  if (const json* tools = f.get("tools")) {
    if (!tools->is_array() || !tools->empty()) {
      throw bad_field("tools", "tools (function calling) are not supported");
    }
  }
  if (const json* tc = f.get("tool_choice")) {
    if (!(tc->is_string() && tc->get<std::string>() == "none")) {
      throw bad_field("tool_choice", "tool_choice other than 'none' is not supported");
    }
  }
  f.ignore({"parallel_tool_calls"});
  r.temporary = f.boolean("temporary", false);
  f.refuse_unknown();
  return r;
}

GenerationRequest parse_completion_request(std::string_view body, const RequestLimits& limits) {
  const json j = parse_body(body);
  Fields f(j, "");
  GenerationRequest r;
  r.kind = GenerationRequest::Kind::Completion;
  const json* p = f.get("prompt");
  if (!p) throw bad_field("prompt", "prompt is required");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt = (*p)[0].get<std::string>();
  } else {
    throw bad_field("prompt", "prompt must be a string (or an array of one string)");
  }
  if (r.prompt.empty()) throw bad_field("prompt", "prompt must not be empty");
  parse_common(f, r, limits, false);
  r.echo = f.boolean("echo", false);
  if (f.get("suffix")) throw bad_field("suffix", "suffix (insertion) is not supported");
  if (const json* b = f.get("best_of")) {
    if (!(b->is_number_integer() && b->get<int64_t>() == 1)) {
      throw bad_field("best_of", "best_of must be 1");
    }
  }
  f.refuse_unknown();
  return r;
}

EmbeddingRequest parse_embedding_request(std::string_view body, const RequestLimits& limits) {
  const json j = parse_body(body);
  Fields f(j, "");
  EmbeddingRequest r;
  r.model = f.string("model");
  const json* in = f.get("input");
  if (!in) throw bad_field("input", "input is required");
  auto token_list = [&](const json& a, const std::string& where) {
    std::vector<int32_t> ids;
    for (const json& t : a) {
      if (!t.is_number_integer() && !t.is_number_unsigned()) {
        throw bad_field("input", where + " must hold token ids (integers)");
      }
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id > INT32_MAX) {
        throw bad_field("input", fmt::format("{} holds token id {}, out of range", where, id));
      }
      ids.push_back(static_cast<int32_t>(id));
    }
    if (ids.empty()) throw bad_field("input", where + " must not be empty");
    return ids;
  };
  if (in->is_string()) {
    r.input.push_back(in->get<std::string>());
  } else if (in->is_array() && !in->empty() && (*in)[0].is_number()) {
    r.input_tokens.push_back(token_list(*in, "input"));
  } else if (in->is_array() && !in->empty()) {
    for (size_t i = 0; i < in->size(); ++i) {
      const json& x = (*in)[i];
      if (x.is_string()) {
        r.input.push_back(x.get<std::string>());
      } else if (x.is_array()) {
        r.input_tokens.push_back(token_list(x, fmt::format("input[{}]", i)));
      } else {
        throw bad_field("input", fmt::format("input[{}] must be a string or token ids", i));
      }
    }
    if (!r.input.empty() && !r.input_tokens.empty()) {
      throw bad_field("input", "input mixes strings and token ids");
    }
  } else {
    throw bad_field("input", "input must be a string, an array of strings or token ids");
  }
  for (const std::string& s : r.input) {
    if (s.empty()) throw bad_field("input", "input strings must not be empty");
  }
  if (r.input.size() + r.input_tokens.size() > limits.max_inputs) {
    throw bad_field("input",
                    fmt::format("input holds {} items, the limit is {}",
                                r.input.size() + r.input_tokens.size(), limits.max_inputs));
  }
  r.encoding_format = f.string("encoding_format", "float");
  if (r.encoding_format != "float" && r.encoding_format != "base64") {
    throw bad_field(
        "encoding_format",
        fmt::format("encoding_format '{}' is not one of float, base64", r.encoding_format));
  }
  if (f.get("dimensions")) {
    throw bad_field("dimensions",
                    "dimensions is not supported: the embedding has the model's width");
  }
  r.user = f.string("user");
  f.refuse_unknown();
  return r;
}

}  // namespace engram::server
