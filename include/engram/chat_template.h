// Chat templates: turn a conversation into the prompt text a model was trained on.
//
// A GGUF's tokenizer.chat_template (Jinja) is evaluated by a small interpreter that matches
// @huggingface/jinja byte for byte on the templates of Llama-2/3, Mistral and Qwen models
// (see tests/fixtures/chat/). Built-in templates (llama3, llama2, mistral, chatml) stand in
// when a file has no template, when its template uses Jinja we do not support, or when the
// user names one.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace engram {

class GgufFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (templates may accept others)
  std::string content;
};

class ChatTemplate {
 public:
  // The file's template, or the built-in `override_name` when non-empty. Throws engram::Error
  // when the file has no template and no name is given, or the name is unknown.
  static ChatTemplate from_gguf(const GgufFile& file, const std::string& override_name = "");
  // A Jinja template given as text; throws engram::Error naming the construct it cannot parse.
  static ChatTemplate from_source(const std::string& source, const std::string& bos_token,
                                  const std::string& eos_token);
  // One of builtin_names().
  static ChatTemplate builtin(const std::string& name, const std::string& bos_token,
                              const std::string& eos_token);
  static std::vector<std::string> builtin_names();

  // The prompt for `messages`, ending with the assistant header when add_generation_prompt.
  // Throws engram::Error when the template rejects the conversation (raise_exception) or
  // evaluates something unsupported.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  // "llama3" etc. for built-ins, "gguf" for a file's own template.
  const std::string& name() const;
  // Why a built-in replaced the file's template ("" when it did not).
  const std::string& fallback_reason() const;
  const std::string& source() const;

 private:
  struct Impl;
  explicit ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace engram
