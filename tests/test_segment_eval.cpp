// The pieces of `engram eval segment`: partition metrics (modularity, conductance, intra/inter
// similarity) against brute-force sums and a graph worked by hand, the key-similarity graph,
// offline surprise segmentation and refinement of whole boundary lists, baseline segmentations
// and boundary recall on hand-made examples.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "engram/error.h"
#include "engram/model.h"
#include "engram/tokenizer.h"
#include "eval/boundaries.h"
#include "eval/document_stream.h"
#include "memory/graph_metrics.h"
#include "memory/segment.h"

namespace engram {
namespace {

std::vector<double> random_graph(int m, std::mt19937& rng, double p_edge) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> A(size_t(m) * m, 0.0);
  for (int i = 0; i < m; ++i) {
    for (int j = i + 1; j < m; ++j) {
      if (u(rng) < p_edge) A[i * m + j] = A[j * m + i] = u(rng);
    }
  }
  return A;
}

// Newman's definition, pair by pair: Q = 1/2W sum_ij (A_ij - k_i k_j / 2W) [c_i == c_j].
double modularity_by_pairs(const std::vector<double>& A, int m, const std::vector<int>& label) {
  std::vector<double> k(m, 0.0);
  double two_w = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) k[i] += A[i * m + j];
    two_w += k[i];
  }
  if (two_w == 0) return 0;  // no edges: no structure
  double q = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      if (label[i] == label[j]) q += A[i * m + j] - k[i] * k[j] / two_w;
    }
  }
  return q / two_w;
}

// Each community's cut counted edge by edge, its volume as the sum of its nodes' degrees.
double conductance_by_edges(const std::vector<double>& A, int m, const std::vector<int>& label,
                            int& counted) {
  std::set<int> communities(label.begin(), label.end());
  double total = 0;
  for (double a : A) total += a;
  double sum = 0;
  counted = 0;
  for (int c : communities) {
    double cut = 0, vol = 0;
    for (int i = 0; i < m; ++i) {
      if (label[i] != c) continue;
      for (int j = 0; j < m; ++j) {
        vol += A[i * m + j];
        if (label[j] != c) cut += A[i * m + j];
      }
    }
    const double denom = std::min(vol, total - vol);
    if (denom > 0) {
      sum += cut / denom;
      ++counted;
    }
  }
  return counted ? sum / counted : 0.0;
}

TEST(GraphMetrics, PartitionMetricsMatchBruteForceOnRandomGraphs) {
  std::mt19937 rng(11);
  for (int m : {2, 3, 6, 11, 17}) {
    for (double p : {0.3, 1.0}) {
      const std::vector<double> A = random_graph(m, rng, p);
      for (int n_comm : {1, 2, 4}) {
        // Labels with gaps and an offset: only equality of labels may matter.
        std::vector<int> label(m);
        for (int i = 0; i < m; ++i) label[i] = 5 + 3 * int(rng() % n_comm);
        int counted = -1, counted_ref = -1;
        const double con = partition_conductance(A, m, label, &counted);
        const double con_ref = conductance_by_edges(A, m, label, counted_ref);
        EXPECT_NEAR(partition_modularity(A, m, label), modularity_by_pairs(A, m, label), 1e-12)
            << "m " << m << " p " << p << " communities " << n_comm;
        EXPECT_NEAR(con, con_ref, 1e-12) << "m " << m << " p " << p;
        EXPECT_EQ(counted, counted_ref);
      }
    }
  }
}

TEST(GraphMetrics, TwoTrianglesJoinedByABridge) {
  // Triangles {0,1,2} and {3,4,5}, unit edges, bridge 2-3: 7 edges, 2W = 14, each side holds
  // 3 edges (6 ordered pairs) and volume 7, so Q = 2 (6/14 - 1/4) = 5/14; each side cuts 1 of
  // its 7: conductance 1/7. Intra pairs all weigh 1; 2 of the 18 inter pairs do: ratio 9.
  const int m = 6;
  std::vector<double> A(m * m, 0.0);
  auto edge = [&](int i, int j) { A[i * m + j] = A[j * m + i] = 1; };
  const std::pair<int, int> edges[] = {{0, 1}, {1, 2}, {0, 2}, {3, 4}, {4, 5}, {3, 5}, {2, 3}};
  for (auto [i, j] : edges) edge(i, j);
  const std::vector<int> label = {0, 0, 0, 1, 1, 1};
  EXPECT_NEAR(partition_modularity(A, m, label), 5.0 / 14.0, 1e-12);
  int counted = 0;
  EXPECT_NEAR(partition_conductance(A, m, label, &counted), 1.0 / 7.0, 1e-12);
  EXPECT_EQ(counted, 2);
  EXPECT_NEAR(intra_inter_ratio(A, m, label), 9.0, 1e-12);

  // A worse split (node 2 on the other side) scores worse on all three.
  const std::vector<int> worse = {0, 0, 1, 1, 1, 1};
  EXPECT_LT(partition_modularity(A, m, worse), 5.0 / 14.0);
  EXPECT_GT(partition_conductance(A, m, worse), 1.0 / 7.0);
  EXPECT_LT(intra_inter_ratio(A, m, worse), 9.0);

  // One community: modularity 0, no conductance counted, no inter pairs.
  const std::vector<int> one(m, 3);
  EXPECT_NEAR(partition_modularity(A, m, one), 0.0, 1e-12);
  EXPECT_EQ(partition_conductance(A, m, one, &counted), 0.0);
  EXPECT_EQ(counted, 0);
  EXPECT_EQ(intra_inter_ratio(A, m, one), 0.0);

  EXPECT_THROW(partition_modularity(A, m, std::vector<int>{0, 1}), Error);
}

TEST(GraphMetrics, KeySimilarityGraphClipsNegativeDotsAndHasNoSelfLoops) {
  // Rows (1,0), (2,1), (-1,0): dots 2, -1 -> 0, -2 -> 0.
  const float keys[] = {1, 0, 2, 1, -1, 0};
  const std::vector<double> A = key_similarity_graph(keys, 3, 2);
  const std::vector<double> want = {0, 2, 0, 2, 0, 0, 0, 0, 0};
  EXPECT_EQ(A, want);
}

TEST(SegmentEval, SurpriseBoundariesMatchTheOnlineSegmenter) {
  // Flat surprise with spikes: every spike after min_event tokens opens an event; the one 3
  // tokens after the previous boundary is merged; tokens before `begin` are not fed.
  std::vector<float> s(80, 1.0f);
  for (int i = 0; i < 80; ++i) s[i] += 0.01f * (i % 3);
  for (int t : {2, 20, 23, 40, 70}) s[t] = 9.0f;
  SegmenterParams p;
  p.gamma = 3.0;  // well above the 0.01 ripple
  p.tau = 16;
  p.min_event = 5;
  p.max_event = 25;
  const std::vector<int64_t> b = surprise_boundaries(s, 5, p);
  // 20 and 40 are spikes; 23 is 3 after 20 (merged); 65 is forced by max_event (40 + 25); the
  // spike at 70 is 5 after 65: a new event.
  EXPECT_EQ(b, (std::vector<int64_t>{20, 40, 65, 70}));

  SurpriseSegmenter online(p);
  std::vector<int64_t> ref;
  for (int t = 5; t < 80; ++t) {
    if (online.push(s[t])) ref.push_back(t);
  }
  EXPECT_EQ(b, ref);
}

TEST(SegmentEval, RefinementMovesEachBoundaryToTheClusterEdge) {
  // Three clusters of keys: [0, 20) along axis 0, [20, 40) along axis 1, [40, 60) along axis 2,
  // with small noise. Boundaries placed at 26 and 37 move to 20 and 40.
  const int n = 60, dim = 3;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> noise(0.0f, 0.05f);
  std::vector<float> keys(n * dim);
  for (int t = 0; t < n; ++t) {
    for (int d = 0; d < dim; ++d) keys[t * dim + d] = noise(rng) + (t / 20 == d ? 1.0f : 0.0f);
  }
  SegmenterParams p;
  p.min_event = 4;
  p.max_event = 40;
  const std::vector<int64_t> start = {26, 37};
  for (Refine how : {Refine::modularity, Refine::conductance}) {
    EXPECT_EQ(refine_boundaries(start, 0, n, keys.data(), dim, p, how),
              (std::vector<int64_t>{20, 40}));
  }
  EXPECT_EQ(refine_boundaries(start, 0, n, keys.data(), dim, p, Refine::none), start);
  // Size limits hold: with max_event 24 the events [0, b) and [b, 45) cannot put b at 20 (the
  // right one would hold 25 tokens); the best allowed split is the nearest, 21.
  p.max_event = 24;
  const std::vector<int64_t> capped = refine_boundaries(std::vector<int64_t>{26, 45}, 0, n,
                                                        keys.data(), dim, p, Refine::modularity);
  EXPECT_EQ(capped[0], 21);
  EXPECT_THROW(
      refine_boundaries(std::vector<int64_t>{37, 26}, 0, n, keys.data(), dim, p, Refine::none),
      Error);
  EXPECT_THROW(
      refine_boundaries(std::vector<int64_t>{0, 26}, 0, n, keys.data(), dim, p, Refine::none),
      Error);
}

TEST(SegmentEval, FixedBoundariesCutEqualEvents) {
  EXPECT_EQ(fixed_boundaries(0, 100, 3), (std::vector<int64_t>{25, 50, 75}));
  EXPECT_EQ(fixed_boundaries(10, 20, 1), (std::vector<int64_t>{15}));
  EXPECT_TRUE(fixed_boundaries(0, 5, 0).empty());
  EXPECT_THROW(fixed_boundaries(0, 5, 5), Error);
}

TEST(SegmentEval, RandomBoundariesAreDistinctInsideAndSeeded) {
  const std::vector<int64_t> a = random_boundaries(100, 1100, 50, 7);
  ASSERT_EQ(a.size(), 50u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 50u);
  EXPECT_GT(a.front(), 100);
  EXPECT_LT(a.back(), 1100);
  EXPECT_EQ(random_boundaries(100, 1100, 50, 7), a);
  EXPECT_NE(random_boundaries(100, 1100, 50, 8), a);
  // Every inner position when the count asks for all of them.
  EXPECT_EQ(random_boundaries(0, 5, 4, 1), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_THROW(random_boundaries(0, 5, 5, 1), Error);
}

TEST(SegmentEval, BoundaryRecallWithinTolerance) {
  const std::vector<int64_t> truth = {100, 200, 300};
  const std::vector<int64_t> found = {97, 205, 260, 301};
  EXPECT_DOUBLE_EQ(boundary_recall(truth, found, 0), 0.0);
  EXPECT_DOUBLE_EQ(boundary_recall(truth, found, 1), 1.0 / 3.0);  // 301
  EXPECT_DOUBLE_EQ(boundary_recall(truth, found, 3), 2.0 / 3.0);  // 97, 301
  EXPECT_DOUBLE_EQ(boundary_recall(truth, found, 5), 1.0);        // and 205
  EXPECT_DOUBLE_EQ(boundary_recall(truth, {}, 50), 0.0);
  EXPECT_DOUBLE_EQ(boundary_recall({}, found, 50), 0.0);
  // One found boundary can serve two true ones within the tolerance.
  EXPECT_DOUBLE_EQ(boundary_recall(std::vector<int64_t>{10, 14}, std::vector<int64_t>{12}, 2), 1.0);
}

TEST(SegmentEval, WindowLabelsCountTheBoundariesBefore) {
  const std::vector<int64_t> bounds = {5, 8, 30};
  EXPECT_EQ(window_labels(bounds, 3, 10), (std::vector<int>{0, 0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(window_labels(bounds, 5, 7), (std::vector<int>{1, 1}));
  EXPECT_EQ(window_labels(bounds, 31, 33), (std::vector<int>{3, 3}));
}

TEST(SegmentEval, SplitDocumentsAtBlankLines) {
  EXPECT_EQ(split_documents("a b\nc\n\n \t\r\nd\r\n\n\n\ne\n"),
            (std::vector<std::string>{"a b\nc", "d", "e"}));
  EXPECT_TRUE(split_documents("\n \n").empty());
}

// A document starts at the token holding its first byte: checked against the lengths of the
// decoded prefixes of the stream (decode, not the piece walk document_stream uses).
TEST(SegmentEval, DocumentStreamStartsAtEachDocumentsFirstToken) {
  auto model = Model::load(std::string(ENGRAM_SOURCE_DIR) + "/models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  const std::vector<std::string> docs = {"The jury said it did find that.",
                                         "Mr. Smith, 42, went home.\nHe slept.", "Rain fell"};
  for (const std::string sep : {"", "\n\n", " ", "\n"}) {
    const DocumentStream s = document_stream(*tok, docs, sep);
    ASSERT_EQ(s.starts.size(), docs.size() - 1) << "separator '" << sep << "'";
    ASSERT_FALSE(s.tokens.empty());
    const size_t head = (tok->add_bos() && s.tokens[0] == tok->bos()) ? 1 : 0;
    auto text_of = [&](int64_t n) {  // the first n stream tokens after BOS, decoded
      return tok->decode(std::span<const int32_t>(s.tokens.data() + head, size_t(n) - head));
    };
    EXPECT_EQ(text_of(int64_t(s.tokens.size())), sep.empty()
                                                     ? docs[0] + " " + docs[1] + " " + docs[2]
                                                     : docs[0] + sep + docs[1] + sep + docs[2]);
    size_t first_byte = 0;
    for (size_t d = 1; d < docs.size(); ++d) {
      first_byte += docs[d - 1].size() + (sep.empty() ? 1 : sep.size());
      const int64_t b = s.starts[d - 1];
      EXPECT_LE(text_of(b).size(), first_byte) << "document " << d << ", separator '" << sep << "'";
      EXPECT_GT(text_of(b + 1).size(), first_byte)
          << "document " << d << ", separator '" << sep << "'";
    }
  }
}

}  // namespace
}  // namespace engram
