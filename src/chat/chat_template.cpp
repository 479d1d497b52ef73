// ChatTemplate: a GGUF's Jinja chat template, or a built-in one, rendered by chat/jinja.
#include "engram/chat_template.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>

#include "chat/jinja.h"
#include "engram/error.h"
#include "engram/gguf.h"

namespace engram {
namespace {

// Built-in templates, written in the same Jinja subset so one renderer serves all of them.
struct Builtin {
  const char* name;
  const char* source;
};

constexpr Builtin kBuiltins[] = {
    {"llama3", R"({{- bos_token -}}
{%- for message in messages -%}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%})"},
    // Llama-2 chat: the system prompt goes inside the first [INST] block.
    {"llama2", R"({%- set system_message = '' -%}
{%- set loop_messages = messages -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set system_message = messages[0]['content'] -%}
{%- set loop_messages = messages[1:] -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- set content = message['content'] -%}
{%- if loop.first and system_message -%}
{%- set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + content -%}
{%- endif -%}
{%- if message['role'] == 'user' -%}
{{- bos_token + '[INST] ' + content | trim + ' [/INST]' -}}
{%- elif message['role'] == 'assistant' -%}
{{- ' ' + content | trim + ' ' + eos_token -}}
{%- else -%}
{{- raise_exception('the llama2 template has no role ' + message['role']) -}}
{%- endif -%}
{%- endfor -%})"},
    // Mistral [INST]: no system role in the format, so a system prompt is prepended to the
    // first user turn.
    {"mistral", R"({%- set system_message = '' -%}
{%- set loop_messages = messages -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set system_message = messages[0]['content'] -%}
{%- set loop_messages = messages[1:] -%}
{%- endif -%}
{{- bos_token -}}
{%- for message in loop_messages -%}
{%- if message['role'] == 'user' -%}
{%- if loop.first and system_message -%}
{{- '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' -}}
{%- else -%}
{{- '[INST] ' + message['content'] + ' [/INST]' -}}
{%- endif -%}
{%- elif message['role'] == 'assistant' -%}
{{- message['content'] + eos_token -}}
{%- else -%}
{{- raise_exception('the mistral template has no role ' + message['role']) -}}
{%- endif -%}
{%- endfor -%})"},
    {"chatml", R"({%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%})"},
};

const Builtin* find_builtin(const std::string& name) {
  for (const auto& b : kBuiltins) {
    if (name == b.name) return &b;
  }
  return nullptr;
}

std::string builtin_list() {
  std::string out;
  for (const auto& b : kBuiltins) out += (out.empty() ? "" : ", ") + std::string(b.name);
  return out;
}

// Which built-in a template is a variant of, judged by its special markers.
std::optional<std::string> recognise(const std::string& src) {
  if (src.find("<|start_header_id|>") != std::string::npos) return "llama3";
  if (src.find("<|im_start|>") != std::string::npos) return "chatml";
  if (src.find("<<SYS>>") != std::string::npos) return "llama2";
  if (src.find("[INST]") != std::string::npos) return "mistral";
  return std::nullopt;
}

std::string token_text(const GgufFile& file, const char* id_key,
                       const std::vector<std::string>& tokens) {
  if (!file.has(id_key)) return "";
  const uint64_t id = file.get_uint(id_key);
  return id < tokens.size() ? tokens[id] : "";
}

}  // namespace

struct ChatTemplate::Impl {
  std::string name;
  std::string fallback_reason;
  chat::jinja::Template tmpl;
  std::string bos, eos;
};

ChatTemplate ChatTemplate::from_source(const std::string& source, const std::string& bos_token,
                                       const std::string& eos_token) {
  return ChatTemplate(std::make_shared<const Impl>(
      Impl{"custom", "", chat::jinja::Template(source), bos_token, eos_token}));
}

ChatTemplate ChatTemplate::builtin(const std::string& name, const std::string& bos_token,
                                   const std::string& eos_token) {
  const Builtin* b = find_builtin(name);
  if (!b) {
    throw Error(
        fmt::format("unknown chat template '{}' (built-in templates: {})", name, builtin_list()));
  }
  return ChatTemplate(std::make_shared<const Impl>(
      Impl{b->name, "", chat::jinja::Template(b->source), bos_token, eos_token}));
}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> out;
  for (const auto& b : kBuiltins) out.emplace_back(b.name);
  return out;
}

ChatTemplate ChatTemplate::from_gguf(const GgufFile& file, const std::string& override_name) {
  std::vector<std::string> tokens;
  if (file.has("tokenizer.ggml.tokens")) tokens = file.get_string_array("tokenizer.ggml.tokens");
  const std::string bos = token_text(file, "tokenizer.ggml.bos_token_id", tokens);
  const std::string eos = token_text(file, "tokenizer.ggml.eos_token_id", tokens);
  if (!override_name.empty()) return builtin(override_name, bos, eos);

  const std::string src = file.get_string("tokenizer.chat_template", "");
  if (src.empty()) {
    throw Error(
        fmt::format("{}: no tokenizer.chat_template in the file; choose one with "
                    "--chat-template NAME ({})",
                    file.path(), builtin_list()));
  }
  try {
    return ChatTemplate(
        std::make_shared<const Impl>(Impl{"gguf", "", chat::jinja::Template(src), bos, eos}));
  } catch (const Error& e) {
    // A template we cannot parse but whose format we know still gets a faithful built-in.
    const auto family = recognise(src);
    if (!family) {
      throw Error(
          fmt::format("{}: tokenizer.chat_template: {} (choose a built-in template with "
                      "--chat-template NAME: {})",
                      file.path(), e.what(), builtin_list()));
    }
    auto impl = std::make_shared<Impl>(
        Impl{*family, e.what(), chat::jinja::Template(find_builtin(*family)->source), bos, eos});
    return ChatTemplate(std::move(impl));
  }
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) const {
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  vars["messages"] = std::move(msgs);
  vars["bos_token"] = impl_->bos;
  vars["eos_token"] = impl_->eos;
  vars["add_generation_prompt"] = add_generation_prompt;
  return impl_->tmpl.render(vars);
}

const std::string& ChatTemplate::name() const {
  return impl_->name;
}
const std::string& ChatTemplate::fallback_reason() const {
  return impl_->fallback_reason;
}
const std::string& ChatTemplate::source() const {
  return impl_->tmpl.source();
}

}  // namespace engram
