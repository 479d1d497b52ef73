// Event boundaries as the segmentation evaluation handles them: a segmentation of the tokens
// [begin, end) is the sorted list of event starts inside (begin, end) (begin itself opens the
// first event and is not listed). Baselines with a given number of boundaries, recall of true
// boundaries within a tolerance, and the event label of each token of a window.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace engram {

// `count` boundaries cutting [begin, end) into count + 1 events of (nearly) equal length.
std::vector<int64_t> fixed_boundaries(int64_t begin, int64_t end, int64_t count);

// `count` distinct boundaries drawn uniformly from (begin, end), sorted; the same seed gives the
// same draw.
std::vector<int64_t> random_boundaries(int64_t begin, int64_t end, int64_t count, uint64_t seed);

// Share of `truth` that has a boundary of `found` within +-k tokens (0 when truth is empty).
// Both sorted.
double boundary_recall(std::span<const int64_t> truth, std::span<const int64_t> found, int64_t k);

// Event of every token in [w0, w1): the number of boundaries at or before it (so tokens of one
// event share a label and the first event of the window is labelled by the events before it).
std::vector<int> window_labels(std::span<const int64_t> bounds, int64_t w0, int64_t w1);

}  // namespace engram
