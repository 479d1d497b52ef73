// `engram eval agent-memory`: evidence recall on LoCoMo for the agent memory's retrievers and
// its learned reranker (RMM's retrospective reflection).
//
// Each conversation is one user's memory bank in a throwaway SQLite store, built twice: one
// memory per turn ("turns") and one per session ("sessions"); with `topics_db`, a third time
// from the topic memories the served model extracts from each session (prospective reflection,
// MemorySession::reflect, cached in that store). Every question with evidence is asked of three
// retrievers -- BM25 (the store's FTS5 index), dense (cosine over the served model's mean-pooled
// embeddings) and hybrid (both, fused by weighted reciprocal rank) -- and scores the share of its
// evidence turns found among the sources of the top 5 and top 10 memories.
//
// The reranker (turns, hybrid top-K candidates) is learned online over one half of each
// conversation's questions (even position in its "qa" list, in order) and measured on the other
// half (odd positions), with rewards from: the evidence labels ("oracle", an upper bound); the
// served model's attention ("attention": it reads the M memories, the question and the gold
// answer, and the memory whose tokens received the most attention from the answer's tokens is
// the used one: see AttentionRule); its citations ("citation": it answers greedily and the [i] it
// writes are the used ones); and two controls that know nothing ("negative": every shown memory
// -1; "random": one shown memory, drawn at random, +1).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engram/agent_memory.h"
#include "engram/reranker.h"

namespace engram {
class Model;
class Tokenizer;
class ThreadPool;
}  // namespace engram

namespace engram::eval {

// How the answer's attention picks the memory it used (the one with the highest score).
enum class AttentionRule { kDensity, kMass, kPeak };

struct AgentMemoryEvalOptions {
  std::string data_dir;
  size_t max_conversations = 0;  // 0: every conversation of every file
  size_t max_questions = 0;      // per conversation, from the start of its "qa" list; 0: all
  size_t top_k = 20;             // hybrid candidates the reranker reorders
  size_t top_m = 5;              // memories shown to the model while learning
  agent_memory::RerankerParams reranker;
  // The reranker's fixed prior: candidate at hybrid rank r (from 0) gets base score -prior * r,
  // so that before learning it keeps (nearly) the retriever's order.
  double prior = 1.0;
  // The fixed hybrid retriever's fusion (weighted reciprocal rank; the store's defaults: k 60,
  // equal weights). --dense-weight 0.3 was chosen on the dev protocol (docs/EVALUATION.md).
  agent_memory::HybridParams hybrid;
  // The reranker also reads the first-stage signals of each candidate (its reciprocal ranks in the
  // full-text and dense lists) through a learned linear term (first_stage_query/candidate).
  bool first_stage_inputs = false;
  int epochs = 1;  // passes over the learning half
  // Tuning protocol: the held-out (odd) questions are not asked at all; the reranker learns on
  // the questions at positions 0 mod 4 and is measured on those at 2 mod 4 (the "test" keys).
  bool dev = false;
  std::vector<std::string> learners;  // reward sources to learn from (empty: every one)
  // Topic memories: the SQLite file that caches the model's extraction per conversation (made
  // when missing; keyed by conversation and model fingerprint). Empty: no topics unit.
  std::string topics_db;
  bool center = true;            // the reranker reads embeddings minus the bank's mean
  bool shared_reranker = false;  // one reranker carried across conversations, not one per user
  bool model_rewards = true;     // learn from attention and citations (needs the model's time)
  AttentionRule attention_rule = AttentionRule::kPeak;
  int memory_tokens = 60;  // each memory is cut to this many tokens in the prompt
  int answer_tokens = 24;  // gold answers cut to / replies generated up to this many
  uint64_t seed = 1;
  // Rerankers learned with the seeds seed .. seed + seeds - 1, each exactly as a run with that
  // --seed alone learns it (the retrievers, embeddings and figures of the fixed lists are shared);
  // the ones after the first are keyed learner_id(name, seed, run).
  int seeds = 1;
  std::string work_dir;  // where the throwaway stores go (a temporary directory when empty)
  std::function<void(const std::string&)> progress;  // progress lines (stderr in the CLI)
};

// Recall summed per category (index 0: every question, 1-5: LoCoMo's categories).
struct RecallSum {
  double sum[6] = {};
  int n[6] = {};
  void add(int category, double recall);
  double mean(int category = 0) const { return n[category] ? sum[category] / n[category] : 0; }
};

struct AgentMemoryEvalResult {
  int conversations = 0;
  int questions = 0;  // questions with evidence (the others are not scored)
  int questions_no_evidence = 0;
  int dropped_evidence = 0;
  int turns = 0, sessions = 0;
  int embedding_dim = 0;
  int unattributed = 0;  // attention draws skipped: the prompt's tokens did not spell its text
  // Topic memories (prospective reflection over every session, once per speaker as the user).
  struct TopicStats {
    int memories = 0;     // topic memories in the banks
    int reflections = 0;  // reflect() calls (sessions x speakers)
    int extracted = 0;    // summaries the model wrote
    int added = 0, merged = 0, unchanged = 0;
    int skipped_sensitive = 0;  // summaries left out by the sensitive-data detector
    int turns_left_out = 0;     // transcript turns left out (sensitive)
    int errors = 0;             // replies not in the format, turns that did not fit, ...
    int unreferenced = 0;       // memories without a reference turn (they can find no evidence)
    int cached = 0;             // conversations read from the cache, not extracted now
    double wall_seconds = 0, cpu_seconds = 0;  // of the extraction (as recorded in the cache)
  } topics;
  // "<unit>/<retriever>/<half>/r<k>", unit turns|sessions|topics, retriever bm25|dense|hybrid|
  // rerank-<init|oracle|negative|random|attention|citation>, half all|learn|test, k 5|10.
  std::map<std::string, RecallSum> recall;
  // Model-derived rewards against the evidence labels, over the learning draws.
  struct RewardStats {
    int draws = 0;               // learning rerankings
    int with_evidence = 0;       // draws whose M memories held an evidence turn
    int used = 0;                // memories rewarded +1
    int used_evidence = 0;       // of them, holding an evidence turn
    int draws_with_use = 0;      // draws with at least one +1
    int hit_given_evidence = 0;  // draws with evidence shown whose +1 included an evidence memory
  };
  std::map<std::string, RewardStats> rewards;  // by reward source, as the rerank-* keys
  double seconds = 0;
};

// The extra inputs the reranker reads with `first_stage_inputs`: the query gains the values
// [1, 0, 0], each candidate [0, 1 / (1 + t), 1 / (1 + d)] with t and d its ranks (from 0) in the
// full-text and dense lists (a value 0 when it is not in a list, rank < 0). Then
// (q + W_q q).(m + W_m m) holds a learned linear term over the two reciprocal ranks (the entries
// of W_m from them to the constant's slot); with W = 0 the score is the plain q.m.
std::vector<float> first_stage_query(std::vector<float> query);
std::vector<float> first_stage_candidate(std::vector<float> candidate, int text_rank,
                                         int dense_rank);

// "attention" for the first run seed, "attention@7" for seed 7 after it (the rerank-* and rewards
// keys of AgentMemoryEvalResult).
std::string learner_id(const std::string& name, uint64_t seed, int run);

// Runs the evaluation; throws engram::Error naming the file and field of bad data.
AgentMemoryEvalResult run_agent_memory_eval(const Model& model, const Tokenizer& tok,
                                            ThreadPool& pool, const AgentMemoryEvalOptions& o);

}  // namespace engram::eval
