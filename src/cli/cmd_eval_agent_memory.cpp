// `engram eval agent-memory`: LoCoMo evidence recall of the agent memory's retrievers and of its
// learned reranker (src/eval/agent_memory_eval.h). Prints the tables; with --json the last line
// is one JSON object holding every figure.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "eval/agent_memory_eval.h"

namespace engram::cli {
namespace {

struct AgentMemoryOptions {
  eval::AgentMemoryEvalOptions eval;
  std::string model;
  int threads = 2;
  bool json = false;
  bool quiet = false;
  bool no_model_rewards = false;
  bool no_center = false;
};

const char* const kCategoryNames[] = {"all",      "multi-hop",  "temporal",
                                      "open-dom", "single-hop", "adversarial"};

void run(AgentMemoryOptions& o) {
  if (o.threads < 1) throw Error(fmt::format("eval agent-memory: -t {} must be >= 1", o.threads));
  if (o.model.empty()) o.model = default_chat_model_path();
  o.eval.model_rewards = !o.no_model_rewards;
  o.eval.center = !o.no_center;
  if (!o.quiet)
    o.eval.progress = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  ThreadPool pool(o.threads);
  const eval::AgentMemoryEvalResult r = eval::run_agent_memory_eval(*model, *tok, pool, o.eval);

  auto mean = [&](const std::string& key, int cat = 0) {
    const auto it = r.recall.find(key);
    return it == r.recall.end() ? 0.0 : it->second.mean(cat);
  };
  std::printf(
      "LoCoMo evidence recall: %d conversations, %d questions with evidence (%d without, not "
      "scored; %d evidence references naming no turn dropped), %d turns, %d sessions; model %s "
      "(embeddings of %d)\n",
      r.conversations, r.questions, r.questions_no_evidence, r.dropped_evidence, r.turns,
      r.sessions, o.model.c_str(), r.embedding_dim);
  std::printf("\nall questions      %7s %7s |", "R@5", "R@10");
  for (int c = 1; c <= 5; ++c) std::printf(" %11s", kCategoryNames[c]);
  std::printf("  (R@5 per category)\n");
  std::vector<std::string> units = {"turns", "sessions"};
  if (!o.eval.topics_db.empty()) units.push_back("topics");
  for (const std::string& unit : units)
    for (const char* ret : {"bm25", "dense", "hybrid"}) {
      const std::string k5 = fmt::format("{}/{}/all/r5", unit, ret);
      std::printf("%-8s %-9s %7.1f %7.1f |", unit.c_str(), ret, 100 * mean(k5),
                  100 * mean(fmt::format("{}/{}/all/r10", unit, ret)));
      for (int c = 1; c <= 5; ++c) std::printf(" %11.1f", 100 * mean(k5, c));
      std::printf("\n");
    }
  if (!o.eval.topics_db.empty()) {
    const auto& t = r.topics;
    std::printf(
        "topics: %d memories (%d without a reference turn) from %d reflections: %d extracted, %d "
        "added, %d merged, %d unchanged, %d left out as sensitive (%d turns); %d errors; "
        "extraction %.0f s wall, %.0f s CPU (%d of %d conversations from the cache %s)\n",
        t.memories, t.unreferenced, t.reflections, t.extracted, t.added, t.merged, t.unchanged,
        t.skipped_sensitive, t.turns_left_out, t.errors, t.wall_seconds, t.cpu_seconds, t.cached,
        r.conversations, o.eval.topics_db.c_str());
  }
  std::printf("\nturns, hybrid top-%zu reranked  learn half R@5 R@10 | %s half R@5 R@10\n",
              o.eval.top_k, o.eval.dev ? "dev-test" : "held-out");
  std::vector<std::pair<std::string, std::string>> rows = {{"fixed (hybrid)", "hybrid"},
                                                           {"reranker W=0", "rerank-init"},
                                                           {"learned: oracle", "rerank-oracle"},
                                                           {"control: all -1", "rerank-negative"},
                                                           {"control: random +1", "rerank-random"}};
  if (o.eval.model_rewards) {
    rows.push_back({"learned: attention", "rerank-attention"});
    rows.push_back({"learned: citation", "rerank-citation"});
  }
  std::erase_if(rows, [&](const auto& row) {
    return row.second != "hybrid" && !r.recall.count("turns/" + row.second + "/learn/r5");
  });
  for (const auto& [label, key] : rows)
    std::printf("%-26s %12.1f %5.1f | %17.1f %5.1f\n", label.c_str(),
                100 * mean("turns/" + key + "/learn/r5"), 100 * mean("turns/" + key + "/learn/r10"),
                100 * mean("turns/" + key + "/test/r5"), 100 * mean("turns/" + key + "/test/r10"));
  if (o.eval.seeds > 1) {
    std::printf("%s R@5 per seed:", o.eval.dev ? "dev-test" : "held-out");
    for (int run = 0; run < o.eval.seeds; ++run) {
      std::printf("\n  seed %llu:", static_cast<unsigned long long>(o.eval.seed + uint64_t(run)));
      for (const auto& [label, key] : rows) {
        const std::string k = key == "hybrid" || key == "rerank-init"
                                  ? key
                                  : "rerank-" + eval::learner_id(key.substr(7), o.eval.seed, run);
        if (r.recall.count("turns/" + k + "/test/r5"))
          std::printf(" %s %.1f", key.c_str(), 100 * mean("turns/" + k + "/test/r5"));
      }
    }
    std::printf("\n");
  }
  for (const auto& [name, s] : r.rewards)
    std::printf(
        "rewards %-9s: %d draws, %.2f memories used a draw, %.0f%% of used memories hold "
        "evidence; evidence shown in %d draws, rewarded in %.0f%% of them\n",
        name.c_str(), s.draws, s.draws ? double(s.used) / s.draws : 0.0,
        s.used ? 100.0 * s.used_evidence / s.used : 0.0, s.with_evidence,
        s.with_evidence ? 100.0 * s.hit_given_evidence / s.with_evidence : 0.0);
  std::printf("%.0f s\n", r.seconds);

  if (!o.json) return;
  nlohmann::json j;
  j["conversations"] = r.conversations;
  j["questions"] = r.questions;
  j["questions_no_evidence"] = r.questions_no_evidence;
  j["dropped_evidence"] = r.dropped_evidence;
  j["turns"] = r.turns;
  j["sessions"] = r.sessions;
  j["embedding_dim"] = r.embedding_dim;
  j["unattributed"] = r.unattributed;
  j["model"] = o.model;
  // dev: the held-out (odd) questions were not asked; "test" figures are the dev-test quarter.
  j["dev"] = o.eval.dev;
  if (!o.eval.topics_db.empty()) {
    const auto& t = r.topics;
    j["topics"] = {{"memories", t.memories},
                   {"unreferenced", t.unreferenced},
                   {"reflections", t.reflections},
                   {"extracted", t.extracted},
                   {"added", t.added},
                   {"merged", t.merged},
                   {"unchanged", t.unchanged},
                   {"skipped_sensitive", t.skipped_sensitive},
                   {"turns_left_out", t.turns_left_out},
                   {"errors", t.errors},
                   {"cached_conversations", t.cached},
                   {"wall_seconds", t.wall_seconds},
                   {"cpu_seconds", t.cpu_seconds}};
  }
  j["seconds"] = r.seconds;
  j["params"] = {
      {"top_k", o.eval.top_k},
      {"top_m", o.eval.top_m},
      {"learning_rate", o.eval.reranker.learning_rate},
      {"baseline", o.eval.reranker.baseline},
      {"batch", o.eval.reranker.batch},
      {"temperature", o.eval.reranker.temperature},
      {"prior", o.eval.prior},
      {"text_weight", o.eval.hybrid.text_weight},
      {"dense_weight", o.eval.hybrid.dense_weight},
      {"rrf_k", o.eval.hybrid.rrf_k},
      {"first_stage_inputs", o.eval.first_stage_inputs},
      {"epochs", o.eval.epochs},
      {"draw_mean_baseline", o.eval.reranker.draw_mean_baseline},
      {"optimizer",
       o.eval.reranker.optimizer == agent_memory::RerankerOptimizer::kSgd ? "sgd" : "adam"},
      {"shared_reranker", o.eval.shared_reranker},
      {"center", o.eval.center},
      {"attention_rule", o.eval.attention_rule == eval::AttentionRule::kPeak   ? "peak"
                         : o.eval.attention_rule == eval::AttentionRule::kMass ? "mass"
                                                                               : "density"},
      {"seed", o.eval.seed},
      {"seeds", o.eval.seeds}};
  // The headline: hybrid over turns, held-out half.
  j["fixed_r5"] = mean("turns/hybrid/test/r5");
  j["fixed_r10"] = mean("turns/hybrid/test/r10");
  j["init_r5"] = mean("turns/rerank-init/test/r5");
  j["oracle_r5"] = mean("turns/rerank-oracle/test/r5");
  j["oracle_r10"] = mean("turns/rerank-oracle/test/r10");
  if (o.eval.model_rewards) {
    j["learned_r5"] = mean("turns/rerank-attention/test/r5");
    j["learned_r10"] = mean("turns/rerank-attention/test/r10");
    j["learned_citation_r5"] = mean("turns/rerank-citation/test/r5");
    j["learned_citation_r10"] = mean("turns/rerank-citation/test/r10");
    j["learned_learn_r5"] = mean("turns/rerank-attention/learn/r5");
    j["learned_citation_learn_r5"] = mean("turns/rerank-citation/learn/r5");
  }
  // Every run seed's held-out (dev: dev-test) R@5 per learner, the first seed's included.
  nlohmann::json per_seed = nlohmann::json::array();
  for (int run = 0; run < o.eval.seeds; ++run) {
    nlohmann::json e = {{"seed", o.eval.seed + uint64_t(run)}};
    for (const char* l : {"oracle", "negative", "random", "attention", "citation"}) {
      const std::string key = "turns/rerank-" + eval::learner_id(l, o.eval.seed, run);
      if (r.recall.count(key + "/test/r5")) {
        e[std::string(l) + "_r5"] = mean(key + "/test/r5");
        e[std::string(l) + "_learn_r5"] = mean(key + "/learn/r5");
      }
    }
    per_seed.push_back(e);
  }
  j["per_seed"] = per_seed;
  j["negative_r5"] = mean("turns/rerank-negative/test/r5");
  j["random_r5"] = mean("turns/rerank-random/test/r5");
  j["fixed_learn_r5"] = mean("turns/hybrid/learn/r5");
  j["oracle_learn_r5"] = mean("turns/rerank-oracle/learn/r5");
  nlohmann::json rec = nlohmann::json::object();
  for (const auto& [key, s] : r.recall) {
    nlohmann::json e = {{"all", s.mean(0)}, {"n", s.n[0]}};
    for (int c = 1; c <= 5; ++c) e[std::to_string(c)] = s.mean(c);
    rec[key] = e;
  }
  j["recall"] = rec;
  nlohmann::json rw = nlohmann::json::object();
  for (const auto& [name, s] : r.rewards)
    rw[name] = {{"draws", s.draws},
                {"used", s.used},
                {"used_evidence", s.used_evidence},
                {"draws_with_use", s.draws_with_use},
                {"with_evidence", s.with_evidence},
                {"hit_given_evidence", s.hit_given_evidence}};
  j["rewards"] = rw;
  std::printf("%s\n", j.dump().c_str());
}

}  // namespace

void add_eval_agent_memory_command(CLI::App* eval) {
  auto o = std::make_shared<AgentMemoryOptions>();
  CLI::App* cmd = eval->add_subcommand(
      "agent-memory",
      "LoCoMo evidence recall@5/@10 of the agent memory's retrievers and learned reranker");
  cmd->add_option("--data", o->eval.data_dir, "Directory of LoCoMo .json files")->required();
  cmd->add_option("-m,--model", o->model,
                  "GGUF model whose embeddings, attention and citations are used (default: the "
                  "shipped chat model)");
  cmd->add_flag("--json", o->json, "Print every figure as one JSON object on the last line");
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str();
  cmd->add_option("--conversations", o->eval.max_conversations,
                  "Use only the first N conversations (0: all)");
  cmd->add_option("--questions", o->eval.max_questions,
                  "Use only the first N questions of each conversation (0: all)");
  cmd->add_option("--top-k", o->eval.top_k, "Hybrid candidates the reranker reorders")
      ->capture_default_str();
  cmd->add_option("--top-m", o->eval.top_m, "Memories shown to the model while learning")
      ->capture_default_str();
  cmd->add_option("--lr", o->eval.reranker.learning_rate, "Reranker learning rate (RMM: 1e-3)")
      ->capture_default_str();
  cmd->add_option("--optimizer", o->eval.reranker.optimizer,
                  "Reranker optimiser: sgd (the default) or adam (RMM's)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, agent_memory::RerankerOptimizer>{
              {"adam", agent_memory::RerankerOptimizer::kAdam},
              {"sgd", agent_memory::RerankerOptimizer::kSgd}},
          CLI::ignore_case));
  cmd->add_option("--prior", o->eval.prior,
                  "Reranker prior: minus this times the hybrid rank is added to each score")
      ->capture_default_str();
  cmd->add_option("--attention-rule", o->eval.attention_rule,
                  "Which memory the answer's attention used: the one with the highest peak "
                  "(most attended token), mass (sum) or density (mean per token)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, eval::AttentionRule>{{"peak", eval::AttentionRule::kPeak},
                                                     {"mass", eval::AttentionRule::kMass},
                                                     {"density", eval::AttentionRule::kDensity}},
          CLI::ignore_case))
      ->capture_default_str();
  cmd->add_option("--text-weight", o->eval.hybrid.text_weight,
                  "Hybrid fusion: weight of the full-text list's reciprocal ranks")
      ->capture_default_str();
  cmd->add_option("--dense-weight", o->eval.hybrid.dense_weight,
                  "Hybrid fusion: weight of the dense list's reciprocal ranks")
      ->capture_default_str();
  cmd->add_option("--rrf-k", o->eval.hybrid.rrf_k,
                  "Hybrid fusion: the reciprocal rank constant (score = weight / (k + rank))")
      ->capture_default_str();
  cmd->add_flag("--first-stage", o->eval.first_stage_inputs,
                "The reranker also reads each candidate's full-text and dense reciprocal ranks "
                "(a learned linear term)");
  // The reranker's defaults (RerankerParams: SGD, lr 1, draw-mean baseline) were chosen on the
  // dev part; RMM's own are --optimizer adam --lr 1e-3 --baseline 0.5.
  auto* draw = cmd->add_flag("--draw-baseline", o->eval.reranker.draw_mean_baseline,
                             "REINFORCE's baseline is each draw's mean reward (the default)");
  cmd->add_option("--baseline", o->eval.reranker.baseline,
                  "A fixed REINFORCE baseline instead of each draw's mean reward (RMM: 0.5)")
      ->each([o](const std::string&) { o->eval.reranker.draw_mean_baseline = false; })
      ->excludes(draw);
  cmd->add_option("--batch", o->eval.reranker.batch, "Rerankings per reranker step")
      ->capture_default_str();
  cmd->add_option("--temperature", o->eval.reranker.temperature,
                  "Temperature of the reranker's Gumbel draws while learning")
      ->capture_default_str();
  cmd->add_option("--epochs", o->eval.epochs, "Passes over the learning half")
      ->capture_default_str();
  cmd->add_flag("--dev", o->eval.dev,
                "Tuning protocol: skip the held-out (odd) questions; learn on questions 0 mod 4, "
                "measure on 2 mod 4");
  cmd->add_option("--rewards", o->eval.learners,
                  "Reward sources to learn from (oracle, negative, random, attention, citation; "
                  "default: all)")
      ->delimiter(',');
  cmd->add_option("--topics-db", o->eval.topics_db,
                  "Measure topic memories too: the model's extraction of every session, cached "
                  "in this SQLite file (made when missing)");
  cmd->add_flag("--no-center", o->no_center,
                "The reranker reads the embeddings as stored, not minus the bank's mean");
  cmd->add_flag("--shared-reranker", o->eval.shared_reranker,
                "One reranker carried across conversations instead of one per user");
  cmd->add_flag("--no-model-rewards", o->no_model_rewards,
                "Skip the attention and citation rewards (retrievers and oracle only)");
  cmd->add_option("--seed", o->eval.seed, "Seed of the reranker's draws")->capture_default_str();
  cmd->add_option("--seeds", o->eval.seeds,
                  "Learn the rerankers of this many seeds from --seed on, each as that seed's run "
                  "alone would (the retrievers are computed once); per_seed in the JSON")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  cmd->callback([o] { run(*o); });
}

}  // namespace engram::cli
