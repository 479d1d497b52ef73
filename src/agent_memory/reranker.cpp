// The learned reranker (see engram/reranker.h). A reranking's gradient is rank one on each side
// (grad W_q = a q^T, grad W_m = q' b^T), so a batch in progress is kept as those vectors, not as
// dim x dim matrices: cheap to hold and to persist between turns.
#include "engram/reranker.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>

#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram::agent_memory {
namespace {

static_assert(std::endian::native == std::endian::little, "the blob format is little-endian");

constexpr char kMagic[4] = {'E', 'R', 'R', 'K'};
constexpr int kMaxDim = 16384;

void check_params(const RerankerParams& p) {
  if (!(p.learning_rate >= 0) || !std::isfinite(p.learning_rate))
    throw Error(fmt::format("reranker: learning rate {} must be finite and >= 0", p.learning_rate));
  if (!std::isfinite(p.baseline))
    throw Error(fmt::format("reranker: baseline {} is not finite", p.baseline));
  if (p.batch < 1) throw Error(fmt::format("reranker: batch {} must be >= 1", p.batch));
  if (!(p.temperature > 0) || !std::isfinite(p.temperature))
    throw Error(fmt::format("reranker: temperature {} must be > 0", p.temperature));
}

// log of the sum of exp(x) over the listed values, stable.
double log_sum_exp(const std::vector<double>& x) {
  double mx = -INFINITY;
  for (double v : x) mx = std::max(mx, v);
  double sum = 0;
  for (double v : x) sum += std::exp(v - mx);
  return mx + std::log(sum);
}

class ByteWriter {
 public:
  template <typename T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void put_floats(std::span<const float> v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size_bytes());
  }
  std::vector<uint8_t> out;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}
  template <typename T>
  T get(const char* what) {
    T v;
    need(sizeof(T), what);
    std::memcpy(&v, in_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  void get_floats(std::vector<float>& v, size_t n, const char* what) {
    need(n * sizeof(float), what);
    v.resize(n);
    std::memcpy(v.data(), in_.data() + at_, n * sizeof(float));
    at_ += n * sizeof(float);
    for (float f : v)
      if (!std::isfinite(f))
        throw Error(fmt::format("reranker blob: {} holds a non-finite value", what));
  }
  size_t left() const { return in_.size() - at_; }

 private:
  void need(size_t n, const char* what) {
    if (left() < n)
      throw Error(
          fmt::format("reranker blob: truncated in {} (at byte {} of {})", what, at_, in_.size()));
  }
  std::span<const uint8_t> in_;
  size_t at_ = 0;
};

}  // namespace

Reranker::Reranker(int dim, const RerankerParams& params, uint64_t seed)
    : dim_(dim), params_(params), rng_(seed) {
  if (dim < 1 || dim > kMaxDim)
    throw Error(fmt::format("reranker: embedding size {} is outside 1..{}", dim, kMaxDim));
  check_params(params);
  w_q_.assign(size_t(dim) * dim, 0.0f);
  w_m_.assign(size_t(dim) * dim, 0.0f);
}

std::vector<float> Reranker::transform(std::span<const float> w, std::span<const float> x) const {
  // x + W x
  std::vector<float> y(x.begin(), x.end());
  for (int a = 0; a < dim_; ++a) {
    const float* row = &w[size_t(a) * dim_];
    double acc = 0;
    for (int b = 0; b < dim_; ++b) acc += double(row[b]) * x[b];
    y[a] += static_cast<float>(acc);
  }
  return y;
}

void Reranker::check_inputs(std::span<const float> query,
                            std::span<const std::vector<float>> candidates,
                            std::span<const double> base) const {
  if (query.size() != size_t(dim_))
    throw Error(
        fmt::format("reranker: query embedding has {} values, expected {}", query.size(), dim_));
  for (size_t i = 0; i < candidates.size(); ++i)
    if (candidates[i].size() != size_t(dim_))
      throw Error(fmt::format("reranker: candidate {} embedding has {} values, expected {}", i,
                              candidates[i].size(), dim_));
  if (!base.empty() && base.size() != candidates.size())
    throw Error(
        fmt::format("reranker: {} base scores for {} candidates", base.size(), candidates.size()));
}

std::vector<double> Reranker::scores(std::span<const float> query,
                                     std::span<const std::vector<float>> candidates,
                                     std::span<const double> base) const {
  check_inputs(query, candidates, base);
  const std::vector<float> qp = transform(w_q_, query);
  std::vector<double> s(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::vector<float> mp = transform(w_m_, candidates[i]);
    double dot = 0;
    for (int a = 0; a < dim_; ++a) dot += double(qp[a]) * mp[a];
    s[i] = dot + (base.empty() ? 0.0 : base[i]);
  }
  return s;
}

std::vector<size_t> Reranker::rerank(std::span<const float> query,
                                     std::span<const std::vector<float>> candidates, size_t M,
                                     bool learning, std::span<const double> base) {
  const std::vector<double> s = scores(query, candidates, base);
  std::vector<double> key = s;
  if (learning) {
    // Gumbel top-M: the M largest s/tau + G, G = -log(-log U), are a draw without replacement
    // from softmax(s / tau), in the order drawn.
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    for (double& k : key) {
      double u = unif(rng_);
      while (u <= 0.0) u = unif(rng_);
      k = k / params_.temperature - std::log(-std::log(u));
    }
  }
  std::vector<size_t> order(candidates.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key[a] > key[b]; });
  order.resize(std::min(M, order.size()));
  if (learning) {
    has_last_ = true;
    last_query_.assign(query.begin(), query.end());
    last_candidates_.assign(candidates.begin(), candidates.end());
    last_base_.assign(base.begin(), base.end());
    last_chosen_ = order;
  }
  return order;
}

std::vector<double> Reranker::advantages(std::span<const double> rewards) const {
  double baseline = params_.baseline;
  if (params_.draw_mean_baseline && !rewards.empty())
    baseline = std::accumulate(rewards.begin(), rewards.end(), 0.0) / double(rewards.size());
  std::vector<double> adv;
  for (double r : rewards) adv.push_back(r - baseline);
  return adv;
}

std::vector<double> Reranker::score_gradient(const std::vector<double>& s,
                                             std::span<const size_t> chosen,
                                             std::span<const double> rewards) const {
  const double tau = params_.temperature;
  const std::vector<double> adv = advantages(rewards);
  std::vector<double> g(s.size(), 0.0);
  std::vector<bool> drawn(s.size(), false);
  std::vector<double> logits;
  for (size_t k = 0; k < chosen.size(); ++k) {
    // p_k(j) = softmax over the candidates not drawn yet of s_j / tau.
    logits.clear();
    for (size_t j = 0; j < s.size(); ++j)
      if (!drawn[j]) logits.push_back(s[j] / tau);
    const double lse = log_sum_exp(logits);
    // loss_k = -adv * (s_c / tau - lse); d/ds_j = -adv / tau * (1[j = c] - p_k(j)).
    for (size_t j = 0; j < s.size(); ++j) {
      if (drawn[j]) continue;
      const double p = std::exp(s[j] / tau - lse);
      g[j] += adv[k] / tau * p;
    }
    g[chosen[k]] -= adv[k] / tau;
    drawn[chosen[k]] = true;
  }
  return g;
}

double Reranker::loss(std::span<const float> query, std::span<const std::vector<float>> candidates,
                      std::span<const size_t> chosen, std::span<const double> rewards,
                      std::span<const double> base) const {
  const std::vector<double> s = scores(query, candidates, base);
  const double tau = params_.temperature;
  const std::vector<double> adv = advantages(rewards);
  std::vector<bool> drawn(s.size(), false);
  std::vector<double> logits;
  double total = 0;
  for (size_t k = 0; k < chosen.size(); ++k) {
    logits.clear();
    for (size_t j = 0; j < s.size(); ++j)
      if (!drawn[j]) logits.push_back(s[j] / tau);
    total -= adv[k] * (s[chosen[k]] / tau - log_sum_exp(logits));
    drawn[chosen[k]] = true;
  }
  return total;
}

Reranker::Episode Reranker::episode(std::span<const float> query,
                                    std::span<const std::vector<float>> candidates,
                                    std::span<const size_t> chosen, std::span<const double> rewards,
                                    std::span<const double> base) const {
  check_inputs(query, candidates, base);
  if (rewards.size() != chosen.size())
    throw Error(
        fmt::format("reranker: {} rewards for {} chosen memories", rewards.size(), chosen.size()));
  for (size_t k = 0; k < chosen.size(); ++k) {
    if (chosen[k] >= candidates.size())
      throw Error(
          fmt::format("reranker: chosen index {} of {} candidates", chosen[k], candidates.size()));
    if (!std::isfinite(rewards[k]))
      throw Error(fmt::format("reranker: reward {} is not finite", k));
    for (size_t j = 0; j < k; ++j)
      if (chosen[j] == chosen[k])
        throw Error(fmt::format("reranker: candidate {} chosen twice", chosen[k]));
  }
  const std::vector<double> s = scores(query, candidates, base);
  const std::vector<double> g = score_gradient(s, chosen, rewards);
  Episode e;
  e.q.assign(query.begin(), query.end());
  e.qp = transform(w_q_, query);
  std::vector<double> a(dim_, 0.0), b(dim_, 0.0);
  for (size_t j = 0; j < candidates.size(); ++j) {
    if (g[j] == 0.0) continue;
    const std::vector<float> mp = transform(w_m_, candidates[j]);
    for (int x = 0; x < dim_; ++x) {
      a[x] += g[j] * mp[x];
      b[x] += g[j] * candidates[j][x];
    }
  }
  e.a.assign(a.begin(), a.end());
  e.b.assign(b.begin(), b.end());
  return e;
}

void Reranker::gradient(std::span<const float> query,
                        std::span<const std::vector<float>> candidates,
                        std::span<const size_t> chosen, std::span<const double> rewards,
                        std::span<const double> base, std::vector<double>& grad_q,
                        std::vector<double>& grad_m) const {
  const Episode e = episode(query, candidates, chosen, rewards, base);
  grad_q.assign(size_t(dim_) * dim_, 0.0);
  grad_m.assign(size_t(dim_) * dim_, 0.0);
  for (int x = 0; x < dim_; ++x)
    for (int y = 0; y < dim_; ++y) {
      grad_q[size_t(x) * dim_ + y] = double(e.a[x]) * e.q[y];
      grad_m[size_t(x) * dim_ + y] = double(e.qp[x]) * e.b[y];
    }
}

bool Reranker::learn(std::span<const double> rewards) {
  if (!has_last_) throw Error("reranker: learn() without a learning rerank() before it");
  pending_.push_back(episode(last_query_, last_candidates_, last_chosen_, rewards, last_base_));
  has_last_ = false;
  if (pending_.size() < size_t(params_.batch)) return false;
  step();
  return true;
}

void Reranker::step() {
  // The batch's mean gradient of each matrix, from its rank-one parts.
  const size_t n = size_t(dim_) * dim_;
  std::vector<double> gq(n, 0.0), gm(n, 0.0);
  const double inv = 1.0 / static_cast<double>(pending_.size());
  for (const Episode& e : pending_)
    for (int x = 0; x < dim_; ++x) {
      const double ax = inv * e.a[x], qpx = inv * e.qp[x];
      double* rq = &gq[size_t(x) * dim_];
      double* rm = &gm[size_t(x) * dim_];
      for (int y = 0; y < dim_; ++y) {
        rq[y] += ax * e.q[y];
        rm[y] += qpx * e.b[y];
      }
    }
  pending_.clear();
  ++steps_;
  const double lr = params_.learning_rate;
  if (params_.optimizer == RerankerOptimizer::kSgd) {
    for (size_t i = 0; i < n; ++i) {
      w_q_[i] -= static_cast<float>(lr * gq[i]);
      w_m_[i] -= static_cast<float>(lr * gm[i]);
    }
    return;
  }
  constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  if (m_q_.empty()) {
    for (auto* v : {&m_q_, &v_q_, &m_m_, &v_m_}) v->assign(n, 0.0f);
  }
  const double c1 = 1.0 - std::pow(b1, double(steps_)), c2 = 1.0 - std::pow(b2, double(steps_));
  auto adam = [&](std::vector<float>& w, std::vector<float>& m, std::vector<float>& v,
                  const std::vector<double>& g) {
    for (size_t i = 0; i < n; ++i) {
      m[i] = static_cast<float>(b1 * m[i] + (1 - b1) * g[i]);
      v[i] = static_cast<float>(b2 * v[i] + (1 - b2) * g[i] * g[i]);
      w[i] -= static_cast<float>(lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps));
    }
  };
  adam(w_q_, m_q_, v_q_, gq);
  adam(w_m_, m_m_, v_m_, gm);
}

std::vector<uint8_t> Reranker::to_bytes() const {
  ByteWriter w;
  for (char c : kMagic) w.put(c);
  w.put(kFormatVersion);
  w.put(int32_t(dim_));
  w.put(int64_t(steps_));
  w.put_floats(w_q_);
  w.put_floats(w_m_);
  w.put(int32_t(m_q_.empty() ? 0 : 1));  // Adam's moments follow
  if (!m_q_.empty())
    for (const auto* v : {&m_q_, &v_q_, &m_m_, &v_m_}) w.put_floats(*v);
  w.put(int32_t(pending_.size()));
  for (const Episode& e : pending_) {
    w.put_floats(e.a);
    w.put_floats(e.q);
    w.put_floats(e.qp);
    w.put_floats(e.b);
  }
  return std::move(w.out);
}

Reranker Reranker::from_bytes(std::span<const uint8_t> bytes, const RerankerParams& params,
                              uint64_t seed) {
  ByteReader r(bytes);
  for (char c : kMagic)
    if (r.get<char>("magic") != c) throw Error("reranker blob: not a reranker (bad magic)");
  const auto version = r.get<int32_t>("version");
  if (version != kFormatVersion)
    throw Error(fmt::format("reranker blob: format version {}, this build reads {}", version,
                            kFormatVersion));
  const auto dim = r.get<int32_t>("dim");
  if (dim < 1 || dim > kMaxDim)
    throw Error(fmt::format("reranker blob: embedding size {} is outside 1..{}", dim, kMaxDim));
  Reranker out(dim, params, seed);
  out.steps_ = r.get<int64_t>("steps");
  if (out.steps_ < 0) throw Error("reranker blob: negative step count");
  const size_t n = size_t(dim) * dim;
  r.get_floats(out.w_q_, n, "W_q");
  r.get_floats(out.w_m_, n, "W_m");
  const auto has_moments = r.get<int32_t>("optimiser state flag");
  if (has_moments != 0 && has_moments != 1)
    throw Error(fmt::format("reranker blob: optimiser state flag {} is not 0 or 1", has_moments));
  if (has_moments) {
    r.get_floats(out.m_q_, n, "Adam state");
    r.get_floats(out.v_q_, n, "Adam state");
    r.get_floats(out.m_m_, n, "Adam state");
    r.get_floats(out.v_m_, n, "Adam state");
    for (float v : out.v_q_)
      if (v < 0) throw Error("reranker blob: negative Adam second moment");
    for (float v : out.v_m_)
      if (v < 0) throw Error("reranker blob: negative Adam second moment");
  }
  const auto n_pending = r.get<int32_t>("pending count");
  if (n_pending < 0 || n_pending > 1 << 20)
    throw Error(fmt::format("reranker blob: pending count {} is out of range", n_pending));
  for (int32_t i = 0; i < n_pending; ++i) {
    Episode e;
    r.get_floats(e.a, dim, "pending gradient");
    r.get_floats(e.q, dim, "pending gradient");
    r.get_floats(e.qp, dim, "pending gradient");
    r.get_floats(e.b, dim, "pending gradient");
    out.pending_.push_back(std::move(e));
  }
  if (r.left() != 0) throw Error(fmt::format("reranker blob: {} bytes after the end", r.left()));
  // A batch saved under a larger `batch` than the caller's now is stepped at once.
  if (out.pending_.size() >= size_t(params.batch)) out.step();
  return out;
}

Reranker load_reranker(MemoryStore& store, std::string_view user, int dim,
                       const RerankerParams& params, uint64_t seed) {
  const std::optional<RerankerState> state = store.reranker(user);
  if (!state) return Reranker(dim, params, seed);
  try {
    if (state->version != Reranker::kFormatVersion)
      throw Error(fmt::format("format version {}, this build reads {}", state->version,
                              Reranker::kFormatVersion));
    Reranker r = Reranker::from_bytes(state->blob, params, seed);
    // Made for another encoder's embeddings: start again rather than misread them.
    if (r.dim() != dim) return Reranker(dim, params, seed);
    return r;
  } catch (const Error& e) {
    throw Error(fmt::format("the reranker stored for user '{}': {}", user, e.what()));
  }
}

void save_reranker(MemoryStore& store, std::string_view user, const Reranker& reranker) {
  store.save_reranker(user, Reranker::kFormatVersion, reranker.to_bytes());
}

}  // namespace engram::agent_memory
