#include "cli/needle_reading.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/context.h"
#include "engram/model.h"
#include "engram/tokenizer.h"
#include "eval/haystack.h"

namespace engram::cli {

void NeedleOptions::check(const char* cmd) const {
  if (trials < 1) throw Error(fmt::format("{}: --trials must be >= 1, got {}", cmd, trials));
  if (n_predict < 1) {
    throw Error(fmt::format("{}: --n-predict must be >= 1, got {}", cmd, n_predict));
  }
}

void add_needle_options(CLI::App* cmd, NeedleOptions& o, const char* trials_help,
                        const char* seed_help, const char* default_wording) {
  o.model = default_model_path();
  o.filler = "brown";
  const char* env = std::getenv("ENGRAM_LOCOMO");
  o.locomo = env ? env : std::string(ENGRAM_SOURCE_DIR) + "/../shared/data/locomo";
  o.wording = default_wording;
  cmd->add_option("-m,--model", o.model, "GGUF model file")->capture_default_str();
  cmd->add_option("--haystack,--filler", o.filler,
                  "Text the needles hide in (repeated as needed): brown (held-out sample), moby, "
                  "sotu (tools/npm-eval), informal (LoCoMo dialogue, see --locomo), a file, or a "
                  "directory of .txt files")
      ->capture_default_str();
  cmd->add_option("--locomo", o.locomo,
                  "LoCoMo .json directory for --haystack informal (default: $ENGRAM_LOCOMO or "
                  "../shared/data/locomo)");
  cmd->add_option("--wording", o.wording,
                  "Needle and question wording: built-in names (comma-separated), tuned, "
                  "held-out or all")
      ->capture_default_str();
  cmd->add_option("--needle-template", o.needle_template,
                  "File with the needle's wording ({key}; multi-key: {label} too); needs "
                  "--question-template")
      ->check(CLI::ExistingFile);
  cmd->add_option("--question-template", o.question_template,
                  "File with the question's wording (the answer follows it; multi-key: {label})")
      ->check(CLI::ExistingFile);
  cmd->add_option("--question-at", o.question_at,
                  "block: the question is its own block after the stream; end: the stream's last "
                  "line, read with it (as run -f reads a file ending in it)")
      ->check(CLI::IsMember({"block", "end"}))
      ->capture_default_str();
  cmd->add_option("--lengths", o.lengths, "Prompt lengths in tokens")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--trials", o.trials, trials_help)->capture_default_str();
  cmd->add_option("--seed", o.seed, seed_help)->capture_default_str();
  cmd->add_option("-n,--n-predict", o.n_predict, "Answer tokens")->capture_default_str();
  cmd->add_option("-t,--threads", o.threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--json", o.json_out, "Write every trial and the summary as JSON");
  cmd->add_option("--csv", o.csv_out, "Write every trial as CSV");
  cmd->add_flag("-q,--quiet", o.quiet, "Only the summary");
  add_memory_options(cmd, o.memory);
}

std::vector<NeedleWording> needle_wordings(const NeedleOptions& o,
                                           const std::vector<NeedleWording>& builtin, bool labelled,
                                           const char* cmd) {
  if (o.needle_template.empty() != o.question_template.empty()) {
    throw Error(fmt::format("{}: --needle-template and --question-template go together", cmd));
  }
  if (o.needle_template.empty()) return select_wordings(builtin, o.wording, cmd);
  return {wording_from_templates(read_text_file(o.needle_template),
                                 read_text_file(o.question_template), labelled, cmd)};
}

std::shared_ptr<const Filler> needle_filler(const NeedleOptions& o, const Tokenizer& tok,
                                            const char* cmd) {
  try {
    const Haystack h = read_haystack(o.filler, {ENGRAM_SOURCE_DIR, o.locomo});
    return std::make_shared<const Filler>(tok, h.text, cmd);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", cmd, e.what()));
  }
}

QuestionAt question_at(const NeedleOptions& o) {
  return o.question_at == "end" ? QuestionAt::end : QuestionAt::block;
}

NeedleSession::NeedleSession(const std::string& model_path, const MemoryOptions& memory,
                             int threads)
    : model(Model::load(model_path)),
      tok(Tokenizer::from_gguf(model->file())),
      pool(threads > 0 ? threads : default_thread_count()),
      ctx(std::make_unique<Context>(*model, pool, ContextParams{},
                                    make_policy(memory, *model, 0))) {}

NeedleSession::~NeedleSession() = default;

NeedleReading read_needle_prompt(Context& ctx, const Tokenizer& tok,
                                 std::span<const int32_t> tokens, int64_t question_begin,
                                 std::span<const TokenRange> needles, int n_predict, bool progress,
                                 QuestionAt at) {
  NeedleReading r;
  ctx.clear();
  const auto t0 = std::chrono::steady_clock::now();
  if (at == QuestionAt::end) {
    prefill_prompt(ctx, tokens, tok.encode("\n", false, false).back(), progress);
  } else {
    prefill(ctx, tokens.first(static_cast<size_t>(question_begin)), progress);
    ctx.eval(tokens.subspan(static_cast<size_t>(question_begin)));
  }
  r.prefill_tps = tokens.size() / std::max(seconds_since(t0), 1e-9);

  const int n_layer = ctx.model().config().n_layer;
  r.coverage.assign(needles.size(), std::vector<double>(n_layer, 0.0));
  r.layers_with_needle.assign(needles.size(), 0);
  for (int l = 0; l < n_layer; ++l) {
    std::span<const int64_t> att = ctx.attended_positions(l);
    std::vector<int64_t> sorted(att.begin(), att.end());
    std::sort(sorted.begin(), sorted.end());
    for (size_t k = 0; k < needles.size(); ++k) {
      const auto [begin, end] = needles[k];
      int64_t seen = 0;
      for (int64_t p = begin; p < end; ++p) {
        seen += std::binary_search(sorted.begin(), sorted.end(), p);
      }
      r.layers_with_needle[k] += seen == end - begin;
      r.coverage[k][l] = double(seen) / double(std::max<int64_t>(1, end - begin));
    }
  }
  r.units = ctx.memory_stats().units;
  r.memory_bytes = ctx.memory_bytes();

  std::vector<int32_t> out;
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < n_predict && ctx.n_past() < ctx.n_ctx(); ++i) {
    std::span<const float> lg = ctx.logits();
    const auto next = static_cast<int32_t>(std::max_element(lg.begin(), lg.end()) - lg.begin());
    if (tok.is_eog(next)) break;
    out.push_back(next);
    const int32_t one[1] = {next};
    ctx.eval(one);
  }
  r.decode_tps = out.size() / std::max(seconds_since(t1), 1e-9);
  r.answer = tok.decode(out);
  return r;
}

bool length_without_room(const Context& ctx, int64_t length, int n_predict) {
  if (length + n_predict <= ctx.n_ctx()) return false;
  std::fprintf(stderr,
               "[%s] length %lld skipped: with the %d answer tokens (-n) it needs %lld cells, more "
               "than the %lld it holds\n",
               ctx.policy().name().c_str(), (long long)length, n_predict,
               (long long)(length + n_predict), (long long)ctx.n_ctx());
  return true;
}

}  // namespace engram::cli
