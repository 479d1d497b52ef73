// Wordings of the needle tasks (passkey, multi-key): what the needle says and how the question
// asks for it. A user's book or notes will not use the wording the model was drilled on, so the
// evaluations run several, split once and for all into those retrieval may be tuned on and
// those held out: no tuning decision looks at a held-out wording (docs/EVALUATION.md, issue 21).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace engram {

class Tokenizer;

struct NeedleWording {
  std::string name;
  std::string intro;     // read before the haystack; empty: none
  std::string needle;    // "{key}" (and for multi-key "{label}") are filled in
  std::string question;  // the answer follows it; multi-key: "{label}" is filled in
  bool held_out = false;
};

// Built in, tuned ones first. Passkey: "infinitebench" (the wording engram-tiny was trained on,
// with its intro), "passkey-plain", "secret-code", "password" are tuned; "lock-code",
// "order-number", "my-code" are held out. Multi-key: "passkey-for", "code-of" tuned;
// "lock-code-for", "room-number-of", "my-code-for" held out.
const std::vector<NeedleWording>& passkey_wordings();
const std::vector<NeedleWording>& kv_wordings();

// The wordings `spec` names: "tuned", "held-out", "all", or names separated by commas (each
// must be one of `builtin`; an error names `task` and lists them).
std::vector<NeedleWording> select_wordings(const std::vector<NeedleWording>& builtin,
                                           const std::string& spec, const char* task);

// A wording from template texts (the files of --needle-template, --question-template), named
// "custom", without intro. Checks the placeholders: the needle must hold "{key}"; with `labelled`
// (multi-key) both must hold "{label}". Trailing whitespace is dropped.
NeedleWording wording_from_templates(const std::string& needle, const std::string& question,
                                     bool labelled, const char* task);

// `text` with every "{key}" and "{label}" replaced.
std::string fill_wording(const std::string& text, const std::string& key,
                         const std::string& label = {});

// Where the question stands: its own block after the stream (a user's turn, as `run -f FILE -p
// QUESTION` reads it), or the stream's last line (a file that ends with it, as `run -f` reads it).
enum class QuestionAt { block, end };

// The question's tokens: for QuestionAt::end a newline, then the question as it tokenizes at the
// start of a line (without the leading space a tokenizer gives a text's first word).
std::vector<int32_t> question_tokens(const Tokenizer& tok, const std::string& question,
                                     QuestionAt at);

}  // namespace engram
