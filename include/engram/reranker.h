// RMM's learned reranker (retrospective reflection): the retriever's top-K candidates are
// reordered by s_i = q'.m'_i with q' = q + W_q q and m'_i = m_i + W_m m_i (a linear map with a
// residual connection on each side; W = 0 at first, so s_i starts as the plain dot product), and
// the top M are kept. While learning the M are drawn by the Gumbel trick at temperature tau (the
// M largest s_i / tau + Gumbel noise: a draw without replacement from softmax(s / tau)); otherwise
// they are the M best scores. After the answer, each of the M gets a reward (+1 used, -1 not) and
// REINFORCE updates W_q and W_m: for the k-th memory drawn, the loss is
//   -(r_k - baseline) * log p(c_k | c_1..c_{k-1}),
//   p(c | drawn) = exp(s_c / tau) / sum over candidates not yet drawn of exp(s_j / tau),
// summed over the M, averaged over `batch` rerankings, one optimiser step per batch: Adam
// (beta 0.9 / 0.999, eps 1e-8; PyTorch's customary choice, which we take RMM's lr 1e-3 to
// assume) or plain SGD. The baseline is RMM's fixed one (0.5) or each draw's mean reward.
//
// The defaults are not RMM's: plain SGD at lr 1 with the draw-mean baseline, chosen on LoCoMo's
// dev part (docs/EVALUATION.md, agent-memory). RMM's Adam at lr 1e-3 with the fixed baseline 0.5
// (RerankerParams::rmm()) was measured there not to move the reranker in a user's ~100 learning
// questions, and the fixed baseline pushes down whatever a draw of all -1 showed.
//
// The caller keeps it simple: rerank(query, candidates, M, learning) -> indices; learn(rewards).
// Parameters (and a batch in progress) persist per user in the memory store (load_reranker,
// save_reranker).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

namespace engram::agent_memory {

class MemoryStore;

enum class RerankerOptimizer { kAdam, kSgd };

struct RerankerParams {
  double learning_rate = 1.0;
  RerankerOptimizer optimizer = RerankerOptimizer::kSgd;
  // REINFORCE's advantage is r - (the mean of the draw's M rewards): only the difference between
  // the shown memories is learned, and a draw whose memories all get the same reward teaches
  // nothing. False: r - baseline.
  bool draw_mean_baseline = true;
  double baseline = 0.5;     // the fixed baseline (RMM's), when !draw_mean_baseline
  int batch = 4;             // rerankings whose gradients are averaged into one step
  double temperature = 0.5;  // of the Gumbel draw while learning

  // RMM's own: Adam at lr 1e-3, fixed baseline 0.5, batch 4, temperature 0.5.
  static RerankerParams rmm() {
    RerankerParams p;
    p.learning_rate = 1e-3;
    p.optimizer = RerankerOptimizer::kAdam;
    p.draw_mean_baseline = false;
    return p;
  }
};

class Reranker {
 public:
  // A fresh reranker (W_q = W_m = 0) for embeddings of `dim` values; `seed` drives the draws.
  explicit Reranker(int dim, const RerankerParams& params = {}, uint64_t seed = 0);

  int dim() const { return dim_; }
  const RerankerParams& params() const { return params_; }

  // s_i = q'.m'_i (+ base[i] when `base` is given: a fixed prior such as the retriever's own
  // ranking, which has no parameters and no gradient). Every vector must have dim() values.
  std::vector<double> scores(std::span<const float> query,
                             std::span<const std::vector<float>> candidates,
                             std::span<const double> base = {}) const;

  // The indices of the M chosen candidates (M is capped at their number), best first. With
  // `learning` they are drawn (Gumbel top-M) and remembered for learn(); otherwise the M best
  // scores, ties to the lower index.
  std::vector<size_t> rerank(std::span<const float> query,
                             std::span<const std::vector<float>> candidates, size_t M,
                             bool learning, std::span<const double> base = {});

  // Rewards of the last learning rerank's choices, in the order rerank returned them. Adds that
  // reranking's gradient to the batch; every `batch` of them one step is taken. Returns true when
  // it took a step. Throws engram::Error without a pending learning rerank or on a count mismatch.
  bool learn(std::span<const double> rewards);

  // REINFORCE loss of choosing `chosen` (in order) with `rewards` (the objective learn() descends;
  // its gradient is what learn() accumulates). For tests and diagnostics.
  double loss(std::span<const float> query, std::span<const std::vector<float>> candidates,
              std::span<const size_t> chosen, std::span<const double> rewards,
              std::span<const double> base = {}) const;
  // The gradient of loss() with respect to W_q and W_m ([dim * dim] each, row-major: W[a][b]
  // multiplies input value b into output value a).
  void gradient(std::span<const float> query, std::span<const std::vector<float>> candidates,
                std::span<const size_t> chosen, std::span<const double> rewards,
                std::span<const double> base, std::vector<double>& grad_q,
                std::vector<double>& grad_m) const;

  std::span<float> w_q() { return w_q_; }
  std::span<float> w_m() { return w_m_; }
  std::span<const float> w_q() const { return w_q_; }
  std::span<const float> w_m() const { return w_m_; }
  int64_t steps() const { return steps_; }            // gradient steps taken
  size_t pending() const { return pending_.size(); }  // rerankings in the batch so far

  // Bytes of the parameters, the optimiser's state and the batch in progress (little-endian; format
  // version kFormatVersion), and back. from_bytes throws engram::Error naming what is wrong.
  static constexpr int32_t kFormatVersion = 1;
  std::vector<uint8_t> to_bytes() const;
  static Reranker from_bytes(std::span<const uint8_t> bytes, const RerankerParams& params = {},
                             uint64_t seed = 0);

 private:
  // One reranking's gradient in factored form: grad W_q = a q^T, grad W_m = q' b^T.
  struct Episode {
    std::vector<float> a, q, qp, b;
  };
  std::vector<float> transform(std::span<const float> w, std::span<const float> x) const;
  void check_inputs(std::span<const float> query, std::span<const std::vector<float>> candidates,
                    std::span<const double> base) const;
  // r_k minus the baseline (fixed, or the draw's mean reward) for each chosen memory.
  std::vector<double> advantages(std::span<const double> rewards) const;
  // d loss / d s_j for every candidate.
  std::vector<double> score_gradient(const std::vector<double>& s, std::span<const size_t> chosen,
                                     std::span<const double> rewards) const;
  Episode episode(std::span<const float> query, std::span<const std::vector<float>> candidates,
                  std::span<const size_t> chosen, std::span<const double> rewards,
                  std::span<const double> base) const;
  void step();

  int dim_;
  RerankerParams params_;
  std::vector<float> w_q_, w_m_;  // [dim * dim]
  // Adam's moment estimates of each matrix ([dim * dim]; empty until the first Adam step).
  std::vector<float> m_q_, v_q_, m_m_, v_m_;
  int64_t steps_ = 0;
  std::vector<Episode> pending_;
  std::mt19937_64 rng_;
  // The last learning rerank, until learn() consumes it.
  bool has_last_ = false;
  std::vector<float> last_query_;
  std::vector<std::vector<float>> last_candidates_;
  std::vector<double> last_base_;
  std::vector<size_t> last_chosen_;
};

// The user's reranker from the store, or a fresh one when the user has none yet or the stored one
// was made for embeddings of another size (another encoder). A blob of another format version or
// a damaged one is an engram::Error naming the user's reranker.
Reranker load_reranker(MemoryStore& store, std::string_view user, int dim,
                       const RerankerParams& params = {}, uint64_t seed = 0);
void save_reranker(MemoryStore& store, std::string_view user, const Reranker& reranker);

}  // namespace engram::agent_memory
