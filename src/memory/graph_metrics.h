// How well a partition of tokens into events fits their key-similarity graph: modularity,
// conductance and the ratio of intra- to inter-event similarity (the graph metrics EM-LLM reports
// for its segmentations). The graph is the one boundary refinement uses: A_ij = max(0, k_i . k_j)
// of the keys before RoPE, no self-loops.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace engram {

// A [m * m] from m key rows of `dim` floats each (row i at keys + i * dim).
std::vector<double> key_similarity_graph(const float* keys, int m, int dim);

// label[i] in [0, n_communities) names the community of node i (any order, gaps allowed).
// Q = sum_c (in_c / 2W - (vol_c / 2W)^2), 2W = sum_ij A_ij, in_c = sum of A over ordered pairs
// inside c, vol_c = sum of the degrees in c. 0 for a graph without edges.
double partition_modularity(const std::vector<double>& A, int m, std::span<const int> label);

// Mean over communities of cut_c / min(vol_c, 2W - vol_c), over the communities where that
// minimum is positive; `counted` (if given) receives how many there were (the mean is 0 when
// there were none).
double partition_conductance(const std::vector<double>& A, int m, std::span<const int> label,
                             int* counted = nullptr);

// Mean A_ij over pairs i != j in the same community divided by the mean over pairs in different
// communities; 0 when either kind of pair is missing or the inter mean is 0.
double intra_inter_ratio(const std::vector<double>& A, int m, std::span<const int> label);

}  // namespace engram
