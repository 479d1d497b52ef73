// `engram eval passkey`: the passkey task (InfiniteBench's wording or others, tuned and held
// out: eval/needle_wording.h) in a haystack (held-out Brown by default). For every wording,
// length and depth a 5-digit key is hidden in the haystack, the question is read (as its own
// block or as the stream's last line), and the greedy answer is checked. Beside accuracy it reports
// the retrieval hit rate: the share of layers whose last query block (the question) attended to
// every token of the needle -- the memory mechanism itself, even where the model's own recall is
// weak.
#include "cli/commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/common.h"
#include "cli/memory_options.h"
#include "cli/needle_reading.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "eval/passkey_task.h"

namespace engram::cli {
namespace {

struct PasskeyOptions : NeedleOptions {
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  PasskeyOptions() {
    lengths = {512, 2048, 8192};
    n_predict = 8;
  }
};

struct Trial {
  std::string wording;
  bool held_out = false;
  int64_t length = 0;
  double depth = 0;
  std::string key, answer;
  bool correct = false;
  double hit_rate = 0;  // share of layers that attended the whole needle
  int64_t needle_begin = 0, needle_end = 0;
  std::vector<double> coverage;  // [layer]: share of the needle's tokens the layer attended
  int64_t units = 0;
  uint64_t memory_bytes = 0;
  double tok_per_s = 0;
};

void passkey(const PasskeyOptions& o) {
  o.check("eval passkey");
  for (double d : o.depths) {
    if (!(d >= 0 && d <= 1))
      throw Error(fmt::format("eval passkey: --depths value {} not in [0, 1]", d));
  }
  NeedleSession session(o.model, o.memory, o.threads);
  const Tokenizer& tok = *session.tok;
  Context& ctx = *session.ctx;
  const std::vector<NeedleWording> wordings =
      needle_wordings(o, passkey_wordings(), false, "eval passkey");
  const std::shared_ptr<const Filler> filler = needle_filler(o, tok, "eval passkey");
  const QuestionAt at = question_at(o);

  const int n_layer = session.model->config().n_layer;
  std::vector<Trial> trials;

  for (const NeedleWording& wording : wordings) {
    // Every wording draws the same keys, depths and offsets.
    std::mt19937_64 rng(static_cast<uint64_t>(o.seed));
    const PasskeyTask task(tok, filler, wording);
    for (int64_t L : o.lengths) {
      if (length_without_room(ctx, L, o.n_predict)) continue;
      for (double depth : o.depths) {
        for (int t = 0; t < o.trials; ++t) {
          Trial r;
          r.wording = wording.name;
          r.held_out = wording.held_out;
          r.length = L;
          r.depth = depth;
          PasskeyPrompt p;
          try {
            p = task.make(L, depth, rng, at);
          } catch (const Error& e) {
            throw Error(fmt::format("eval passkey: --lengths {}: {}", L, e.what()));
          }
          r.key = p.key;
          r.needle_begin = p.needle_begin;
          r.needle_end = p.needle_end;
          NeedleReading read;
          try {
            const TokenRange needle[1] = {{p.needle_begin, p.needle_end}};
            read = read_needle_prompt(ctx, tok, p.tokens, p.question_begin, needle, o.n_predict,
                                      !o.quiet && L > 32768, at);
          } catch (const Error& e) {
            throw Error(fmt::format("eval passkey at length {}: {}", L, e.what()));
          }
          r.tok_per_s = read.prefill_tps;
          r.coverage = read.coverage[0];
          r.hit_rate = double(read.layers_with_needle[0]) / n_layer;
          r.units = read.units;
          r.memory_bytes = read.memory_bytes;
          r.answer = read.answer;
          r.correct = passkey_answer_matches(r.answer, r.key);
          if (!o.quiet) {
            std::fprintf(stderr,
                         "[%s] %s length %lld depth %.2f key %s answer '%s' %s | hit %.2f (needle "
                         "attended per layer: %s) | units %lld | %s | %.0f tok/s\n",
                         ctx.policy().name().c_str(), r.wording.c_str(), (long long)L, depth,
                         r.key.c_str(), r.answer.c_str(), r.correct ? "ok" : "WRONG", r.hit_rate,
                         fmt::format("{:.2f}", fmt::join(r.coverage, " ")).c_str(),
                         (long long)r.units, format_bytes(r.memory_bytes).c_str(), r.tok_per_s);
          }
          trials.push_back(r);
        }
      }
    }
  }

  // Summary per wording x length x depth.
  std::printf("memory %s, haystack %s, question as %s, %d trial(s) per cell\n",
              ctx.policy().name().c_str(), o.filler.c_str(),
              at == QuestionAt::end ? "the last line" : "its own block", o.trials);
  std::printf("%-16s %8s %10s %6s %9s %9s\n", "wording", "part", "length", "depth", "accuracy",
              "hit_rate");
  nlohmann::json cells = nlohmann::json::array();
  for (size_t i = 0; i < trials.size(); i += o.trials) {
    double acc = 0, hit = 0;
    for (int t = 0; t < o.trials; ++t) {
      acc += trials[i + t].correct;
      hit += trials[i + t].hit_rate;
    }
    acc /= o.trials;
    hit /= o.trials;
    std::printf("%-16s %8s %10lld %6.2f %9.3f %9.3f\n", trials[i].wording.c_str(),
                trials[i].held_out ? "held-out" : "tuned", (long long)trials[i].length,
                trials[i].depth, acc, hit);
    cells.push_back({{"wording", trials[i].wording},
                     {"held_out", trials[i].held_out},
                     {"length", trials[i].length},
                     {"depth", trials[i].depth},
                     {"accuracy", acc},
                     {"hit_rate", hit}});
  }
  if (!o.json_out.empty()) {
    nlohmann::json j;
    j["task"] = "passkey";
    j["model"] = o.model;
    j["memory"] = ctx.policy().name();
    j["haystack"] = o.filler;
    j["question_at"] = o.question_at;
    j["seed"] = o.seed;
    j["cells"] = cells;
    j["trials"] = nlohmann::json::array();
    for (const Trial& r : trials) {
      j["trials"].push_back({{"wording", r.wording},
                             {"held_out", r.held_out},
                             {"length", r.length},
                             {"depth", r.depth},
                             {"key", r.key},
                             {"answer", r.answer},
                             {"correct", r.correct},
                             {"hit_rate", r.hit_rate},
                             {"needle", {r.needle_begin, r.needle_end}},
                             {"needle_attended", r.coverage},
                             {"units", r.units},
                             {"memory_bytes", r.memory_bytes},
                             {"tok_per_s", r.tok_per_s}});
    }
    std::ofstream f = open_output(o.json_out, "eval passkey", "--json");
    f << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (!o.csv_out.empty()) {
    std::ofstream f = open_output(o.csv_out, "eval passkey", "--csv");
    f << "memory,haystack,question_at,wording,held_out,length,depth,key,correct,hit_rate,units,"
         "memory_bytes,tok_per_s\n";
    for (const Trial& r : trials) {
      f << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{:.1f}\n", ctx.policy().name(),
                       o.filler, o.question_at, r.wording, int(r.held_out), r.length, r.depth,
                       r.key, int(r.correct), r.hit_rate, r.units, r.memory_bytes, r.tok_per_s);
    }
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* eval =
      app.add_subcommand("eval", "Evaluate memory: passkey, kv, ppl, segment, agent-memory");
  eval->require_subcommand(1);
  auto o = std::make_shared<PasskeyOptions>();
  CLI::App* cmd =
      eval->add_subcommand("passkey", "Pass key hidden in filler text, over lengths and depths");
  add_needle_options(cmd, *o, "Keys per wording x length x depth",
                     "Seed of keys and filler offsets (each wording draws the same)",
                     "infinitebench");
  cmd->add_option("--depths", o->depths, "Needle depths in [0, 1]")
      ->delimiter(',')
      ->capture_default_str();
  cmd->callback([o] { passkey(*o); });
  add_eval_ppl_command(eval);
  add_eval_segment_command(eval);
  add_eval_kv_command(eval);
  add_eval_agent_memory_command(eval);
}

}  // namespace engram::cli
