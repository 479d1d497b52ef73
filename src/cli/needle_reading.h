// What the needle evaluations (passkey, multi-key) share: their flags, the opened model and
// context, and one reading of a prompt -- the stream is prefilled, the question is read as its
// own block (a user's turn: memory retrieves for what it asks), and the answer is decoded
// greedily. Used by `eval passkey`, `eval kv` and (the reading) `demo`.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/error.h"
#include "engram/thread_pool.h"
#include "eval/filler.h"
#include "eval/needle_wording.h"

namespace engram {
class Context;
class Model;
class Tokenizer;
}  // namespace engram

namespace CLI {
class App;
}

namespace engram::cli {

// The options every needle evaluation takes (each command sets its own defaults).
struct NeedleOptions {
  std::string model;
  std::string filler;   // --haystack: brown | moby | sotu | informal | FILE | DIR
  std::string locomo;   // LoCoMo directory of --haystack informal
  std::string wording;  // --wording: names, tuned, held-out or all
  std::string needle_template, question_template;  // files; replace --wording
  std::string question_at = "block";
  std::vector<int64_t> lengths;
  int trials = 1;
  int threads = 0;
  int64_t seed = 1;
  int n_predict = 8;
  std::string json_out;
  std::string csv_out;
  bool quiet = false;
  MemoryOptions memory;
  // Refuses --trials or --n-predict below 1; `cmd` ("eval passkey") starts the message.
  void check(const char* cmd) const;
};

// Registers -m, --haystack (alias --filler), --locomo, --wording, --needle-template,
// --question-template, --question-at, --lengths, --trials (described by trials_help), --seed
// (seed_help), -n, -t, --json, --csv, -q and the memory flags on cmd; the model and haystack
// default to the shipped model and held-out Brown, the wording to `default_wording`.
void add_needle_options(CLI::App* cmd, NeedleOptions& o, const char* trials_help,
                        const char* seed_help, const char* default_wording);

// The wordings the options ask for, from `builtin` (or the template files); `labelled`: the
// templates need "{label}" (multi-key).
std::vector<NeedleWording> needle_wordings(const NeedleOptions& o,
                                           const std::vector<NeedleWording>& builtin, bool labelled,
                                           const char* cmd);

// The haystack of --haystack, tokenized once; the error names `cmd`.
std::shared_ptr<const Filler> needle_filler(const NeedleOptions& o, const Tokenizer& tok,
                                            const char* cmd);

QuestionAt question_at(const NeedleOptions& o);

// A needle task (PasskeyTask, MultiKeyTask) built on the text of the --filler file; an error
// reading or using it names `cmd` and the file.
template <class Task>
Task make_needle_task(const char* cmd, const Tokenizer& tok, const std::string& filler_path) {
  try {
    return Task(tok, read_text_file(filler_path));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: --filler '{}': {}", cmd, filler_path, e.what()));
  }
}

// What a needle evaluation opens with: the model, its tokenizer, the threads and a context
// under the --memory policy.
struct NeedleSession {
  NeedleSession(const std::string& model_path, const MemoryOptions& memory, int threads);
  ~NeedleSession();
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  ThreadPool pool;
  std::unique_ptr<Context> ctx;
};

struct NeedleReading {
  std::string answer;
  // [needle][layer]: share of the needle's tokens among those the layer attended while reading
  // the question (the retrieval hit of a memory policy).
  std::vector<std::vector<double>> coverage;
  std::vector<int> layers_with_needle;  // [needle]: layers that attended every token of it
  int64_t units = 0;                    // memory units (events or blocks) formed
  uint64_t memory_bytes = 0;
  double prefill_tps = 0;  // prompt tokens per second, question included
  double decode_tps = 0;
};

using TokenRange = std::pair<int64_t, int64_t>;  // [begin, end) in the prompt

// Clears ctx, reads tokens (tokens[question_begin, end) as the question's block; with
// QuestionAt::end the whole prompt as one stream, as `run -f` reads a file) and decodes at most
// n_predict tokens, stopping at end-of-generation or when the context is full. `needles` are the
// token ranges whose coverage is measured. `progress` draws the prefill progress bar.
NeedleReading read_needle_prompt(Context& ctx, const Tokenizer& tok,
                                 std::span<const int32_t> tokens, int64_t question_begin,
                                 std::span<const TokenRange> needles, int n_predict, bool progress,
                                 QuestionAt at = QuestionAt::block);

// True, after saying so on stderr, when the context cannot hold a prompt of `length` tokens and
// the n_predict answer tokens (`full` beyond its size): the caller skips that length rather than
// fail the whole grid or count an answer cut short as wrong.
bool length_without_room(const Context& ctx, int64_t length, int n_predict);

}  // namespace engram::cli
