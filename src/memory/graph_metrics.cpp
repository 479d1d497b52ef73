#include "memory/graph_metrics.h"

#include <algorithm>

#include "engram/error.h"

namespace engram {
namespace {

// Community masses: degree volume and the mass of ordered pairs inside each community, with the
// labels shifted to start at 0.
struct Masses {
  std::vector<double> vol, in;
  double two_w = 0;
};

Masses masses(const std::vector<double>& A, int m, std::span<const int> label) {
  if (static_cast<int>(label.size()) != m || A.size() != size_t(m) * m) {
    throw Error("graph metrics: the graph and the labels disagree on the number of nodes");
  }
  Masses s;
  if (m == 0) return s;
  const auto [lo, hi] = std::minmax_element(label.begin(), label.end());
  const int base = *lo;
  s.vol.assign(size_t(*hi - base + 1), 0.0);
  s.in.assign(s.vol.size(), 0.0);
  for (int i = 0; i < m; ++i) {
    const int ci = label[i] - base;
    const double* row = &A[size_t(i) * m];
    for (int j = 0; j < m; ++j) {
      s.vol[ci] += row[j];
      if (label[j] - base == ci) s.in[ci] += row[j];
    }
  }
  for (double v : s.vol) s.two_w += v;
  return s;
}

}  // namespace

std::vector<double> key_similarity_graph(const float* keys, int m, int dim) {
  std::vector<double> A(size_t(m) * m, 0.0);
  for (int i = 0; i < m; ++i) {
    const float* ki = keys + size_t(i) * dim;
    for (int j = i + 1; j < m; ++j) {
      const float* kj = keys + size_t(j) * dim;
      double d = 0;
      for (int t = 0; t < dim; ++t) d += double(ki[t]) * kj[t];
      A[size_t(i) * m + j] = A[size_t(j) * m + i] = std::max(0.0, d);
    }
  }
  return A;
}

double partition_modularity(const std::vector<double>& A, int m, std::span<const int> label) {
  const Masses s = masses(A, m, label);
  if (s.two_w <= 0) return 0;
  double q = 0;
  for (size_t c = 0; c < s.vol.size(); ++c) {
    const double f = s.vol[c] / s.two_w;
    q += s.in[c] / s.two_w - f * f;
  }
  return q;
}

double partition_conductance(const std::vector<double>& A, int m, std::span<const int> label,
                             int* counted) {
  const Masses s = masses(A, m, label);
  double sum = 0;
  int n = 0;
  for (size_t c = 0; c < s.vol.size(); ++c) {
    const double denom = std::min(s.vol[c], s.two_w - s.vol[c]);
    if (denom <= 0) continue;
    sum += (s.vol[c] - s.in[c]) / denom;
    ++n;
  }
  if (counted) *counted = n;
  return n > 0 ? sum / n : 0.0;
}

double intra_inter_ratio(const std::vector<double>& A, int m, std::span<const int> label) {
  if (static_cast<int>(label.size()) != m || A.size() != size_t(m) * m) {
    throw Error("graph metrics: the graph and the labels disagree on the number of nodes");
  }
  double intra = 0, inter = 0;
  int64_t n_intra = 0, n_inter = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      if (i == j) continue;
      if (label[i] == label[j]) {
        intra += A[size_t(i) * m + j];
        ++n_intra;
      } else {
        inter += A[size_t(i) * m + j];
        ++n_inter;
      }
    }
  }
  if (n_intra == 0 || n_inter == 0 || inter <= 0) return 0;
  return (intra / n_intra) / (inter / n_inter);
}

}  // namespace engram
