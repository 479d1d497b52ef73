// Hybrid retrieval over one user's memories: the store's full-text hits and a brute-force
// cosine pass over the user's embeddings (a memory bank per user is small: thousands, not
// millions), fused by reciprocal rank.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "agent_memory/store_input.h"
#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram::agent_memory {
namespace {

// Cosine similarity; 0 for a zero vector (it points nowhere).
double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
}

}  // namespace

std::vector<SearchHit> hybrid_search(MemoryStore& store, std::string_view user,
                                     std::string_view query,
                                     const std::vector<float>& query_embedding, size_t limit,
                                     const HybridParams& params) {
  check_query(query, limit);
  check_embedding(query_embedding);
  if (params.text_candidates < 1 || params.text_candidates > StoreLimits::kMaxSearchLimit)
    throw Error(fmt::format("hybrid search: text_candidates {} is outside 1..{}",
                            params.text_candidates, StoreLimits::kMaxSearchLimit));
  if (!(params.rrf_k >= 0) || !(params.text_weight >= 0) || !(params.dense_weight >= 0))
    throw Error("hybrid search: rrf_k and the weights must be >= 0");

  std::unordered_map<int64_t, SearchHit> fused;
  auto credit = [&](const Memory& m, size_t rank, double weight) {
    auto [it, fresh] = fused.try_emplace(m.id, SearchHit{m, 0.0});
    it->second.score += weight / (params.rrf_k + static_cast<double>(rank));
  };
  // A list with weight 0 is not consulted: its memories would only trail with score 0.
  if (params.text_weight > 0) {
    const auto text_hits = store.search(user, query, params.text_candidates);
    for (size_t r = 0; r < text_hits.size(); ++r)
      credit(text_hits[r].memory, r + 1, params.text_weight);
  }
  if (!query_embedding.empty() && params.dense_weight > 0) {
    std::vector<std::pair<double, Memory>> dense;
    for (Memory& m : store.get_all(user))
      if (m.embedding.size() == query_embedding.size())
        dense.emplace_back(cosine(query_embedding, m.embedding), std::move(m));
    // Best first; ties by the order the memories were added (get_all's order, kept by
    // stable_sort), so the ranking does not depend on ids.
    std::stable_sort(dense.begin(), dense.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t r = 0; r < dense.size(); ++r) credit(dense[r].second, r + 1, params.dense_weight);
  }

  std::vector<SearchHit> out;
  out.reserve(fused.size());
  for (auto& [id, hit] : fused) out.push_back(std::move(hit));
  std::sort(out.begin(), out.end(), [](const SearchHit& a, const SearchHit& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.memory.created_ms != b.memory.created_ms ? a.memory.created_ms < b.memory.created_ms
                                                      : a.memory.id < b.memory.id;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace engram::agent_memory
