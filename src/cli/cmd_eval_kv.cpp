// `engram eval kv`: multi-key retrieval. Several labelled five-digit keys are hidden at random
// depths of a haystack (held-out Brown by default), in one of several wordings (tuned and held
// out: eval/needle_wording.h), and one is asked (as its own block or the stream's last line); a key
// from another needle counts as wrong (and is reported apart: the policy brought back a
// look-alike). Beside accuracy, the retrieval hit rate: the share of layers whose question block
// attended to every token of the asked needle.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "cli/needle_reading.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "eval/multikey_task.h"
#include "eval/passkey_task.h"

namespace engram::cli {
namespace {

struct KvOptions : NeedleOptions {
  int keys = 8;
  KvOptions() {
    lengths = {512, 2048, 8192};
    trials = 8;
    n_predict = 7;
  }
};

struct KvTrial {
  std::string wording;
  bool held_out = false;
  int64_t length = 0;
  MultiKeyPrompt prompt;  // tokens dropped after the run
  std::string answer;
  bool correct = false;
  bool other_key = false;  // answered the key of another needle
  double depth = 0;        // where the asked needle starts, as a share of the prompt
  double hit_rate = 0;
  std::vector<double> coverage;  // [layer] of the asked needle
  int loaded = 0;                // needles (of all) the last layer attended whole
  int64_t units = 0;
  uint64_t memory_bytes = 0;
  double tok_per_s = 0;
};

void kv(const KvOptions& o) {
  const int n_labels = static_cast<int>(multikey_labels().size());
  if (o.keys < 2 || o.keys > n_labels) {
    throw Error(fmt::format("eval kv: --keys must be in 2..{}, got {}", n_labels, o.keys));
  }
  o.check("eval kv");
  NeedleSession session(o.model, o.memory, o.threads);
  const Tokenizer& tok = *session.tok;
  Context& ctx = *session.ctx;
  const std::vector<NeedleWording> wordings = needle_wordings(o, kv_wordings(), true, "eval kv");
  const std::shared_ptr<const Filler> filler = needle_filler(o, tok, "eval kv");
  const QuestionAt at = question_at(o);

  const int n_layer = session.model->config().n_layer;
  const std::string name = ctx.policy().name();
  std::vector<KvTrial> trials;

  for (const NeedleWording& wording : wordings) {
    std::mt19937_64 rng(static_cast<uint64_t>(o.seed));  // the same draws for every wording
    const MultiKeyTask task(tok, filler, wording);
    for (int64_t L : o.lengths) {
      if (length_without_room(ctx, L, o.n_predict)) continue;
      for (int t = 0; t < o.trials; ++t) {
        KvTrial r;
        r.wording = wording.name;
        r.held_out = wording.held_out;
        r.length = L;
        try {
          r.prompt = task.make(L, o.keys, t % o.keys, rng, at);  // every position asked in turn
        } catch (const Error& e) {
          throw Error(fmt::format("eval kv: --lengths {}: {}", L, e.what()));
        }
        const MultiKeyPrompt& p = r.prompt;
        NeedleReading read;
        try {
          read = read_needle_prompt(ctx, tok, p.tokens, p.question_begin, p.needles, o.n_predict,
                                    !o.quiet && L > 32768, at);
        } catch (const Error& e) {
          throw Error(fmt::format("eval kv at length {}: {}", L, e.what()));
        }
        r.answer = read.answer;
        r.correct = passkey_answer_matches(r.answer, p.keys[p.asked]);
        for (int i = 0; i < o.keys; ++i) {
          r.other_key |= i != p.asked && passkey_answer_matches(r.answer, p.keys[i]);
        }
        r.depth = double(p.needles[p.asked].first) / double(L);
        r.hit_rate = double(read.layers_with_needle[p.asked]) / n_layer;
        r.coverage = read.coverage[p.asked];
        // Needles the last layer loaded whole: memory that loads every look-alike makes the
        // hit rate easy and leaves the choice to the model.
        for (const std::vector<double>& c : read.coverage) r.loaded += c.back() == 1.0;
        r.units = read.units;
        r.memory_bytes = read.memory_bytes;
        r.tok_per_s = read.prefill_tps;
        if (!o.quiet) {
          std::fprintf(
              stderr,
              "[%s] %s length %lld: %d keys, asked #%d '%s' (depth %.2f) key %s answer '%s' "
              "%s | hit %.2f (per layer: %s), needles loaded %d | units %lld | %s | %.0f tok/s\n",
              name.c_str(), r.wording.c_str(), (long long)L, o.keys, p.asked,
              p.labels[p.asked].c_str(), r.depth, p.keys[p.asked].c_str(), r.answer.c_str(),
              r.correct ? "ok" : (r.other_key ? "WRONG (another key)" : "WRONG"), r.hit_rate,
              fmt::format("{:.2f}", fmt::join(r.coverage, " ")).c_str(), r.loaded,
              (long long)r.units, format_bytes(r.memory_bytes).c_str(), r.tok_per_s);
        }
        r.prompt.tokens.clear();
        trials.push_back(std::move(r));
      }
    }
  }

  std::printf(
      "memory %s, haystack %s, question as %s, %d keys per prompt, %d prompt(s) per length\n",
      name.c_str(), o.filler.c_str(), at == QuestionAt::end ? "the last line" : "its own block",
      o.keys, o.trials);
  std::printf("%-14s %8s %10s %9s %10s %9s %15s\n", "wording", "part", "length", "accuracy",
              "other_key", "hit_rate", "needles_loaded");
  nlohmann::json cells = nlohmann::json::array();
  for (size_t i = 0; i < trials.size(); i += o.trials) {
    double acc = 0, other = 0, hit = 0, loaded = 0;
    for (int t = 0; t < o.trials; ++t) {
      acc += trials[i + t].correct;
      other += trials[i + t].other_key;
      hit += trials[i + t].hit_rate;
      loaded += trials[i + t].loaded;
    }
    acc /= o.trials;
    other /= o.trials;
    hit /= o.trials;
    loaded /= o.trials;
    std::printf("%-14s %8s %10lld %9.3f %10.3f %9.3f %12.2f/%d\n", trials[i].wording.c_str(),
                trials[i].held_out ? "held-out" : "tuned", (long long)trials[i].length, acc, other,
                hit, loaded, o.keys);
    cells.push_back({{"wording", trials[i].wording},
                     {"held_out", trials[i].held_out},
                     {"length", trials[i].length},
                     {"accuracy", acc},
                     {"other_key", other},
                     {"hit_rate", hit},
                     {"needles_loaded", loaded}});
  }
  if (!o.json_out.empty()) {
    nlohmann::json j;
    j["task"] = "kv";
    j["model"] = o.model;
    j["memory"] = name;
    j["keys"] = o.keys;
    j["haystack"] = o.filler;
    j["question_at"] = o.question_at;
    j["seed"] = o.seed;
    j["cells"] = cells;
    j["trials"] = nlohmann::json::array();
    for (const KvTrial& r : trials) {
      const MultiKeyPrompt& p = r.prompt;
      nlohmann::json needles = nlohmann::json::array();
      for (const auto& [b, e] : p.needles) needles.push_back({b, e});
      j["trials"].push_back({{"wording", r.wording},
                             {"held_out", r.held_out},
                             {"length", r.length},
                             {"labels", p.labels},
                             {"keys", p.keys},
                             {"needles", needles},
                             {"asked", p.asked},
                             {"depth", r.depth},
                             {"answer", r.answer},
                             {"correct", r.correct},
                             {"other_key", r.other_key},
                             {"hit_rate", r.hit_rate},
                             {"needle_attended", r.coverage},
                             {"needles_loaded", r.loaded},
                             {"units", r.units},
                             {"memory_bytes", r.memory_bytes},
                             {"tok_per_s", r.tok_per_s}});
    }
    std::ofstream f = open_output(o.json_out, "eval kv", "--json");
    f << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (!o.csv_out.empty()) {
    std::ofstream f = open_output(o.csv_out, "eval kv", "--csv");
    f << "memory,haystack,question_at,wording,held_out,length,keys,asked,depth,key,correct,"
         "other_key,hit_rate,needles_loaded,units,memory_bytes,tok_per_s\n";
    for (const KvTrial& r : trials) {
      const MultiKeyPrompt& p = r.prompt;
      f << fmt::format("{},{},{},{},{},{},{},{},{:.4f},{},{},{},{},{},{},{},{:.1f}\n", name,
                       o.filler, o.question_at, r.wording, int(r.held_out), r.length, o.keys,
                       p.asked, r.depth, p.keys[p.asked], int(r.correct), int(r.other_key),
                       r.hit_rate, r.loaded, r.units, r.memory_bytes, r.tok_per_s);
    }
  }
}

}  // namespace

void add_eval_kv_command(CLI::App* eval) {
  auto o = std::make_shared<KvOptions>();
  CLI::App* cmd = eval->add_subcommand(
      "kv", "Multi-key retrieval: labelled keys hidden in filler text, one of them asked");
  add_needle_options(
      cmd, *o, "Prompts per wording x length (each asks the next needle in turn)",
      "Seed of labels, keys, depths and filler offsets (each wording draws the same)",
      "passkey-for");
  cmd->add_option("--keys", o->keys, "Key-value pairs hidden per prompt")->capture_default_str();
  cmd->callback([o] { kv(*o); });
}

}  // namespace engram::cli
