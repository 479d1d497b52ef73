// The learned reranker (reranker.h) behind the memory session's seam (memory_session.h).
#include <map>
#include <string>

#include "engram/memory_session.h"
#include "engram/reranker.h"

namespace engram::agent_memory {
namespace {

class LearnedReranker : public MemoryReranker {
 public:
  LearnedReranker(MemoryStore& store, bool learning, uint64_t seed, const RerankerParams& params)
      : store_(store), learning_(learning), seed_(seed), params_(params) {}

  std::vector<size_t> choose(std::string_view user, const std::vector<float>& query,
                             const std::vector<SearchHit>& candidates, size_t m) override {
    pending_.erase(std::string(user));
    bool scorable = !query.empty() && !candidates.empty();
    for (const SearchHit& c : candidates)
      scorable = scorable && c.memory.embedding.size() == query.size();
    if (!scorable) return top_.choose(user, query, candidates, m);
    std::vector<std::vector<float>> embeddings;
    for (const SearchHit& c : candidates) embeddings.push_back(c.memory.embedding);
    Reranker& r = reranker(user, static_cast<int>(query.size()));
    const std::vector<size_t> chosen = r.rerank(query, embeddings, m, learning_);
    if (learning_) pending_[std::string(user)] = chosen;
    return chosen;
  }

  void feedback(std::string_view user, const std::vector<float>&, const std::vector<SearchHit>&,
                const std::vector<size_t>& chosen, const std::vector<bool>& cited) override {
    auto it = pending_.find(std::string(user));
    if (it == pending_.end() || it->second != chosen || cited.size() != chosen.size()) return;
    pending_.erase(it);
    std::vector<double> rewards;
    for (bool c : cited) rewards.push_back(c ? 1.0 : -1.0);
    Reranker& r = rerankers_.at(std::string(user));
    r.learn(rewards);
    // Saved after every reranking, so that a batch in progress survives a restart too.
    save_reranker(store_, user, r);
  }

 private:
  Reranker& reranker(std::string_view user, int dim) {
    auto it = rerankers_.find(std::string(user));
    if (it == rerankers_.end() || it->second.dim() != dim) {
      Reranker r = load_reranker(store_, user, dim, params_, seed_);
      it = rerankers_.insert_or_assign(std::string(user), std::move(r)).first;
    }
    return it->second;
  }

  MemoryStore& store_;
  bool learning_;
  uint64_t seed_;
  RerankerParams params_;
  TopReranker top_;
  std::map<std::string, Reranker> rerankers_;
  std::map<std::string, std::vector<size_t>> pending_;  // a learning rerank awaiting its rewards
};

}  // namespace

std::unique_ptr<MemoryReranker> learned_reranker(MemoryStore& store, bool learning, uint64_t seed,
                                                 const RerankerParams& params) {
  return std::make_unique<LearnedReranker>(store, learning, seed, params);
}

}  // namespace engram::agent_memory
