// Event segmentation for the episodic policy: surprise boundaries with an adaptive threshold,
// and boundary refinement on a key-similarity graph (modularity or conductance).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engram/memory.h"

namespace engram {

class RecordWriter;
class RecordReader;

struct SegmenterParams {
  double gamma = 1.0;  // threshold = mean + gamma * std of the preceding tau surprises
  int tau = 256;
  int min_event = 8;
  int max_event = 128;
};

// Online: feed the surprise of each token in order; push() says whether that token opens a new
// event. The first token fed opens the first event (push returns false for it: nothing closes).
class SurpriseSegmenter {
 public:
  explicit SurpriseSegmenter(const SegmenterParams& p) : p_(p) {}
  bool push(double surprise);
  // Cut at max_event only (generated tokens without surprise).
  bool push_forced();
  void reset();
  int64_t event_length() const { return len_; }
  // Saved sessions: the running statistics and the open event, and back (checked against the
  // parameters).
  void save(RecordWriter& out) const;
  void load(RecordReader& in);

 private:
  bool close_if(bool boundary);
  SegmenterParams p_;
  std::vector<double> hist_;  // ring of the last tau surprises
  size_t head_ = 0;
  int64_t len_ = 0;  // tokens in the open event
  bool started_ = false;
};

// Scores of the bipartition [0, s) | [s, m) of a graph on m nodes, for every s in [0, m]
// (s = 0 and s = m are the single community). A is symmetric, [m * m], non-negative.
// Modularity: Q = sum_c (in_c / 2W - (vol_c / 2W)^2), with 2W = sum A_ij, in_c = sum of A over
// pairs inside c, vol_c = sum of degrees in c. Conductance: cut / min(vol_left, vol_right)
// (1 when a side has zero volume).
std::vector<double> split_modularity(const std::vector<double>& A, int m);
std::vector<double> split_conductance(const std::vector<double>& A, int m);

// Best split s in [lo, hi] by `how` (max modularity / min conductance); `keep` wins ties.
int best_split(const std::vector<double>& A, int m, int lo, int hi, int keep, Refine how);

// Offline use (evaluation): the event starts the online segmenter gives when fed surprise[t] for
// t in [begin, surprise.size()). The event opened by `begin` itself is not listed.
std::vector<int64_t> surprise_boundaries(std::span<const float> surprise, int64_t begin,
                                         const SegmenterParams& p);

// Refines sorted event starts inside (begin, end) in order, as the episodic policy does online:
// the boundary b between events [a, b) and [b, c) (a already refined, c the next start or end)
// moves to the best split of [a, c) on the key-similarity graph (graph_metrics.h), keeping both
// events within min_event/max_event where it can. Key row t is at keys + t * dim.
std::vector<int64_t> refine_boundaries(std::span<const int64_t> bounds, int64_t begin, int64_t end,
                                       const float* keys, int dim, const SegmenterParams& p,
                                       Refine how);

}  // namespace engram
