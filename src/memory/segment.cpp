#include "memory/segment.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engram/error.h"
#include "memory/graph_metrics.h"
#include "util/record_io.h"

namespace engram {

bool SurpriseSegmenter::close_if(bool boundary) {
  if (!started_) {
    started_ = true;
    len_ = 1;
    return false;
  }
  // A run at max_event is cut; a surprise boundary inside a short event is merged into it.
  if (len_ >= p_.max_event || (boundary && len_ >= p_.min_event)) {
    len_ = 1;
    return true;
  }
  ++len_;
  return false;
}

bool SurpriseSegmenter::push(double s) {
  bool boundary = false;
  const size_t n = hist_.size();
  if (n >= 2) {
    double mean = 0;
    for (double v : hist_) mean += v;
    mean /= n;
    double var = 0;
    for (double v : hist_) var += (v - mean) * (v - mean);
    boundary = s > mean + p_.gamma * std::sqrt(var / n);
  }
  const bool cut = close_if(boundary);
  if (static_cast<int>(n) < p_.tau) {
    hist_.push_back(s);
  } else {
    hist_[head_] = s;
    head_ = (head_ + 1) % hist_.size();
  }
  return cut;
}

bool SurpriseSegmenter::push_forced() {
  return close_if(false);
}

void SurpriseSegmenter::save(RecordWriter& out) const {
  out.vec(hist_);
  out.put<uint64_t>(head_);
  out.put<int64_t>(len_);
  out.put<uint8_t>(started_ ? 1 : 0);
}

void SurpriseSegmenter::load(RecordReader& in) {
  std::vector<double> hist = in.vec<double>("surprise history", uint64_t(std::max(p_.tau, 0)));
  const uint64_t head = in.get<uint64_t>("history head");
  const int64_t len = in.get<int64_t>("open event length");
  const uint8_t started = in.get<uint8_t>("started");
  for (double v : hist) {
    if (!std::isfinite(v)) in.fail("surprise history", "holds a value that is not finite");
  }
  // The ring wraps only once full.
  if (head != 0 && (hist.size() < size_t(p_.tau) || head >= hist.size())) {
    in.fail("history head", fmt::format("{} for {} values (tau {})", head, hist.size(), p_.tau));
  }
  if (len < 0 || len > p_.max_event || started > 1 || (started == 0) != (len == 0)) {
    in.fail("open event length",
            fmt::format("{} (started {}, max_event {})", len, started, p_.max_event));
  }
  hist_ = std::move(hist);
  head_ = head;
  len_ = len;
  started_ = started == 1;
}

void SurpriseSegmenter::reset() {
  hist_.clear();
  head_ = 0;
  len_ = 0;
  started_ = false;
}

namespace {

// Degrees, and the mass of the upper-left square [0, s)^2 for every s (prefix over rows).
void prefix_masses(const std::vector<double>& A, int m, std::vector<double>& deg,
                   std::vector<double>& in_left, std::vector<double>& vol_left) {
  deg.assign(m, 0.0);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) deg[i] += A[size_t(i) * m + j];
  }
  in_left.assign(m + 1, 0.0);
  vol_left.assign(m + 1, 0.0);
  for (int s = 0; s < m; ++s) {
    double row = 0;  // A[s][0..s)
    for (int j = 0; j < s; ++j) row += A[size_t(s) * m + j];
    in_left[s + 1] = in_left[s] + 2 * row + A[size_t(s) * m + s];
    vol_left[s + 1] = vol_left[s] + deg[s];
  }
}

}  // namespace

std::vector<double> split_modularity(const std::vector<double>& A, int m) {
  std::vector<double> deg, in_l, vol_l;
  prefix_masses(A, m, deg, in_l, vol_l);
  const double two_w = vol_l[m];
  std::vector<double> q(m + 1, 0.0);
  if (two_w <= 0) return q;
  for (int s = 0; s <= m; ++s) {
    const double vl = vol_l[s], vr = two_w - vl;
    // Mass inside the right square: total - left square - both cut halves.
    const double cut = vl - in_l[s];
    const double in_r = two_w - in_l[s] - 2 * cut;
    q[s] = (in_l[s] + in_r) / two_w - (vl * vl + vr * vr) / (two_w * two_w);
  }
  return q;
}

std::vector<double> split_conductance(const std::vector<double>& A, int m) {
  std::vector<double> deg, in_l, vol_l;
  prefix_masses(A, m, deg, in_l, vol_l);
  const double two_w = vol_l[m];
  std::vector<double> c(m + 1, 1.0);
  for (int s = 0; s <= m; ++s) {
    const double vl = vol_l[s], vr = two_w - vl;
    const double denom = std::min(vl, vr);
    if (denom > 0) c[s] = (vl - in_l[s]) / denom;
  }
  return c;
}

int best_split(const std::vector<double>& A, int m, int lo, int hi, int keep, Refine how) {
  if (how == Refine::none || lo > hi) return keep;
  const bool maximise = how == Refine::modularity;
  const std::vector<double> score = maximise ? split_modularity(A, m) : split_conductance(A, m);
  int best = keep;
  double best_v = (keep >= 0 && keep <= m) ? score[keep] : (maximise ? -1e300 : 1e300);
  for (int s = lo; s <= hi; ++s) {
    const bool better = maximise ? score[s] > best_v + 1e-12 : score[s] < best_v - 1e-12;
    if (better) {
      best = s;
      best_v = score[s];
    }
  }
  return best;
}

std::vector<int64_t> surprise_boundaries(std::span<const float> surprise, int64_t begin,
                                         const SegmenterParams& p) {
  SurpriseSegmenter seg(p);
  std::vector<int64_t> out;
  for (int64_t t = std::max<int64_t>(begin, 0); t < static_cast<int64_t>(surprise.size()); ++t) {
    if (seg.push(surprise[t])) out.push_back(t);
  }
  return out;
}

std::vector<int64_t> refine_boundaries(std::span<const int64_t> bounds, int64_t begin, int64_t end,
                                       const float* keys, int dim, const SegmenterParams& p,
                                       Refine how) {
  std::vector<int64_t> out(bounds.begin(), bounds.end());
  for (size_t j = 0; j < out.size(); ++j) {
    const int64_t prev = j == 0 ? begin : out[j - 1];
    if (out[j] <= prev || out[j] >= end || (j + 1 < out.size() && out[j + 1] <= out[j])) {
      throw Error(fmt::format("refine_boundaries: boundary {} (#{}) is not sorted inside ({}, {})",
                              out[j], j, begin, end));
    }
  }
  if (how == Refine::none) return out;
  for (size_t j = 0; j < out.size(); ++j) {
    const int64_t a = j == 0 ? begin : out[j - 1];
    const int64_t c = j + 1 < out.size() ? out[j + 1] : end;
    if (c - a > 16384) {
      throw Error(
          fmt::format("refine_boundaries: events [{}, {}) and [{}, {}) span {} tokens, "
                      "more than the 16384 a dense similarity graph is built for",
                      a, out[j], out[j], c, c - a));
    }
    const int m = static_cast<int>(c - a);
    const std::vector<double> A = key_similarity_graph(keys + size_t(a) * dim, m, dim);
    const int lo = std::max(p.min_event, m - p.max_event);
    const int hi = std::min(m - p.min_event, p.max_event);
    out[j] = a + best_split(A, m, std::max(lo, 1), std::min(hi, m - 1), int(out[j] - a), how);
  }
  return out;
}

}  // namespace engram
