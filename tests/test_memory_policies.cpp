// Memory policies on hand-made sequences: the cells and positions of each plan, eviction,
// surprise segmentation, graph metrics against brute force, retrieval of planted events, and
// refusal of bad parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "engram/error.h"
#include "engram/memory.h"
#include "memory/segment.h"

namespace engram {
namespace {

std::vector<KvCell> make_cells(int64_t n) {
  std::vector<KvCell> cells(n);
  for (int64_t i = 0; i < n; ++i) cells[i] = {static_cast<int32_t>(i % 7), i};
  return cells;
}

std::vector<int64_t> range(int64_t a, int64_t b) {
  std::vector<int64_t> r;
  for (int64_t i = a; i < b; ++i) r.push_back(i);
  return r;
}

std::vector<int64_t> cat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> r;
  for (const auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

// The small `blocks` policy most retrieval tests use: 2 initial cells, a window of 8, blocks of
// 4, one block loaded per query block, `repr_topk` representatives each.
MemoryParams small_blocks(int repr_topk = 1) {
  MemoryParams mp;
  mp.kind = "blocks";
  mp.n_init = 2;
  mp.n_local = 8;
  mp.block_size = 4;
  mp.topk = 1;
  mp.repr_topk = repr_topk;
  mp.chunk_gate = -1e9;  // prefill chunks retrieve like questions (the gate has its own test)
  return mp;
}

ModelShape tiny_shape(int head_dim, int n_ctx_train) {
  ModelShape s;
  s.n_layer = 1;
  s.n_head = 1;
  s.n_head_kv = 1;
  s.head_dim = head_dim;
  s.n_ctx_train = n_ctx_train;
  return s;
}

TEST(MemoryPlan, FullAttendsEverythingAtOwnPositions) {
  auto p = make_full_policy(64);
  auto cells = make_cells(10);
  AttentionPlan plan;
  p->plan(0, {8, 2}, cells, {}, plan);
  EXPECT_EQ(plan.cells, range(0, 10));
  EXPECT_EQ(plan.key_pos, range(0, 10));
  EXPECT_EQ(plan.query_pos, range(8, 10));
  EXPECT_EQ(p->capacity(), 64);
}

TEST(MemoryPlan, SinksKeepInitialTokensAndWindowAtSlotPositions) {
  MemoryParams mp;
  mp.kind = "sinks";
  mp.n_sink = 2;
  mp.n_local = 4;
  auto p = make_memory_policy(mp, tiny_shape(2, 16));
  EXPECT_EQ(p->max_block(), 16 - 2 - 4);
  auto cells = make_cells(12);
  AttentionPlan plan;
  p->plan(0, {10, 2}, cells, {}, plan);
  EXPECT_EQ(plan.cells, cat({{0, 1}, range(6, 12)}));
  EXPECT_EQ(plan.key_pos, range(0, 8));
  EXPECT_EQ(plan.query_pos, (std::vector<int64_t>{6, 7}));
  // Early in the stream nothing is dropped and positions are the stream's own.
  p->plan(0, {0, 3}, make_cells(3), {}, plan);
  EXPECT_EQ(plan.cells, range(0, 3));
  EXPECT_EQ(plan.key_pos, range(0, 3));
}

TEST(MemoryPlan, WindowHasNoSinks) {
  MemoryParams mp;
  mp.kind = "window";
  mp.n_local = 4;
  auto p = make_memory_policy(mp, tiny_shape(2, 16));
  auto cells = make_cells(12);
  AttentionPlan plan;
  p->plan(0, {10, 2}, cells, {}, plan);
  EXPECT_EQ(plan.cells, range(6, 12));
  EXPECT_EQ(plan.key_pos, range(0, 6));
  EXPECT_EQ(plan.query_pos, (std::vector<int64_t>{4, 5}));
}

TEST(MemoryPlan, SinksEvictDeadCellsInBatchesAndPlanTheRenumberedCells) {
  MemoryParams mp;
  mp.kind = "sinks";
  mp.n_sink = 2;
  mp.n_local = 4;
  auto p = make_memory_policy(mp, tiny_shape(2, 16));
  Eviction ev;
  p->apply({11, 1}, make_cells(12), {}, ev);
  EXPECT_TRUE(ev.empty());  // 6 dead cells: below the batch size
  auto cells = make_cells(50);
  p->apply({49, 1}, cells, {}, ev);
  EXPECT_EQ(ev.begin, 2);
  EXPECT_EQ(ev.end, 46);
  cells.erase(cells.begin() + ev.begin, cells.begin() + ev.end);
  cells.push_back({3, 50});
  AttentionPlan plan;
  p->plan(0, {6, 1}, cells, {}, plan);
  EXPECT_EQ(plan.cells, range(0, 7));
  EXPECT_EQ(plan.key_pos, range(0, 7));
}

// Feeds cells [first, first + n) to a 1-layer, 1-head policy with the given keys, queries and
// surprise (and, if given, the attention each new cell received from its own block).
void feed(MemoryPolicy& p, std::vector<KvCell>& cells, int n, int dim,
          const std::function<std::vector<float>(int64_t)>& key, const std::vector<float>& query,
          float surprise = 0.0f, const std::function<float(int64_t)>& received = nullptr) {
  const int64_t first = static_cast<int64_t>(cells.size());
  for (int i = 0; i < n; ++i) cells.push_back({1, first + i});
  BlockData d;
  d.n_tokens = n;
  d.q.assign(1, {});
  d.k.assign(1, {});
  for (int i = 0; i < n; ++i) {
    auto k = key(first + i);
    d.k[0].insert(d.k[0].end(), k.begin(), k.end());
    d.q[0].insert(d.q[0].end(), query.begin(), query.end());
  }
  d.surprise.assign(n, surprise);
  if (received) {
    d.planned.assign(1, range(first, first + n));
    d.received.assign(1, {});
    for (int i = 0; i < n; ++i) d.received[0].push_back(received(first + i));
  }
  (void)dim;
  Eviction ev;
  p.apply({first, n}, cells, d, ev);
  EXPECT_TRUE(ev.empty());
}

// Plans a query block of `n` tokens that all ask `query` (n = 2: a prompt block, retrieved
// live; n = 1 is a decode step, which may reuse the memory chosen earlier).
AttentionPlan plan_query(const MemoryPolicy& p, std::vector<KvCell> cells,
                         const std::vector<float>& query, int n = 2) {
  const int64_t first = static_cast<int64_t>(cells.size());
  BlockData d;
  d.n_tokens = n;
  d.q.assign(1, {});
  for (int i = 0; i < n; ++i) {
    cells.push_back({1, first + i});
    d.q[0].insert(d.q[0].end(), query.begin(), query.end());
  }
  d.k.assign(1, std::vector<float>(query.size() * n, 0.0f));
  AttentionPlan plan;
  p.plan(0, {first, n}, cells, d, plan);
  return plan;
}

// Retrieved memory cells of a plan (past the initial cells, keys at the last initial cell's
// position, which all retrieved memory shares).
std::vector<int64_t> memory_cells(const AttentionPlan& plan, int64_t n_init) {
  std::vector<int64_t> m;
  for (size_t j = 0; j < plan.cells.size(); ++j) {
    if (plan.cells[j] >= n_init && plan.key_pos[j] == std::max<int64_t>(n_init - 1, 0)) {
      m.push_back(plan.cells[j]);
    }
  }
  return m;
}

TEST(MemoryPlan, BlocksLoadTheBestBlockAtOnePositionBetweenInitAndWindow) {
  MemoryParams mp = small_blocks();
  auto p = make_memory_policy(mp, tiny_shape(2, 64));
  std::vector<KvCell> cells;
  // Cells [6, 10) point along y, the rest along x.
  auto key = [](int64_t c) {
    return c >= 6 && c < 10 ? std::vector<float>{0, 1} : std::vector<float>{1, 0};
  };
  for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 2, key, {1, 1});
  // Blocks cut every 4 from n_init: [2,6) [6,10) [10,14) [14,18) left the window at 18.
  EXPECT_EQ(p->units(), 4);
  AttentionPlan plan = plan_query(*p, cells, {0, 1});
  EXPECT_EQ(plan.cells, cat({{0, 1}, range(6, 10), range(18, 28)}));
  // Memory shares the last initial cell's position; the window goes on from there.
  std::vector<int64_t> pos = {0, 1, 1, 1, 1, 1};
  for (int64_t i = 0; i < 10; ++i) pos.push_back(2 + i);
  EXPECT_EQ(plan.key_pos, pos);
  EXPECT_EQ(plan.query_pos, (std::vector<int64_t>{10, 11}));
  // Another query picks another block.
  plan = plan_query(*p, cells, {1, 0});
  EXPECT_EQ(plan.cells[2], 2);
}

// Retrieval is a nearest-neighbour search over representatives: block [2, 6) holds one key
// that matches the query strongly among three that point away (its mean matches less than
// block [6, 10)'s), and it is the one loaded. head_dim 32: the int8 (Q8_0) scoring path.
TEST(MemoryRetrieval, OneStronglyMatchingKeyBeatsAUnitThatMatchesOnAverage) {
  MemoryParams mp = small_blocks(4);
  auto p = make_memory_policy(mp, tiny_shape(32, 64));
  std::vector<KvCell> cells;
  auto key = [](int64_t c) {
    std::vector<float> k(32, 0.0f);
    if (c == 3) {
      k[0] = 10;  // mean of block [2, 6) along x: (10 - 3 * 3) / 4 = 0.25
    } else if (c >= 2 && c < 6) {
      k[0] = -3;
    } else if (c >= 6 && c < 10) {
      k[0] = 1;  // mean 1
    } else {
      k[1] = 1;
    }
    return k;
  };
  std::vector<float> other(32, 0.0f);
  other[2] = 1;
  for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 32, key, other);
  ASSERT_EQ(p->units(), 4);
  std::vector<float> x(32, 0.0f);
  x[0] = 1;
  EXPECT_EQ(memory_cells(plan_query(*p, cells, x), 2), range(2, 6));
}

// A question scores units by the attention mass its (query, head) pairs would give them, so a
// head that matches every unit about equally cannot decide. Head 0 asks along x, where every
// unit answers strongly and block [6, 10) a little more; head 1 asks along y, where only block
// [10, 14) answers. A question (2 tokens) loads [10, 14); a prefill chunk, scored by the best
// match per head (cheaper, one mean query), follows head 0's larger products to [6, 10).
TEST(MemoryRetrieval, AQuestionLoadsTheUnitItsHeadsSingleOutNotTheOneEveryHeadLikes) {
  MemoryParams mp = small_blocks();
  ModelShape shape = tiny_shape(2, 64);
  shape.n_head = shape.n_head_kv = 2;
  auto p = make_memory_policy(mp, shape);
  std::vector<KvCell> cells;
  auto key = [](int64_t c) {  // [head 0 x, y, head 1 x, y]
    const float h0 = c >= 6 && c < 10 ? 1.1f : 1.0f;
    const float h1 = c >= 10 && c < 14 ? 3.0f : 0.0f;
    return std::vector<float>{h0, 0, 0, h1};
  };
  for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 4, key, {0, 1, 1, 0});
  ASSERT_EQ(p->units(), 4);
  const std::vector<float> ask = {10, 0, 0, 1};
  EXPECT_EQ(memory_cells(plan_query(*p, cells, ask), 2), range(10, 14));
  EXPECT_EQ(memory_cells(plan_query(*p, cells, ask, p->max_block()), 2), range(6, 10));
}

// A question also scores units by the token ids it shares with them (--lexical): block [6, 10)
// holds the question's two rare tokens (50, 51) while its keys match the question less than
// block [10, 14)'s. Attention alone loads [10, 14); with the lexical score, [6, 10). Prefill
// chunks ignore the lexical score.
TEST(MemoryRetrieval, AQuestionLoadsTheUnitThatSharesItsRareTokens) {
  for (double lexical : {0.0, 3.0}) {
    MemoryParams mp = small_blocks();
    mp.lexical = lexical;
    auto p = make_memory_policy(mp, tiny_shape(2, 64));
    std::vector<KvCell> cells;
    auto key = [](int64_t c) { return std::vector<float>{c >= 10 && c < 14 ? 1.5f : 1.0f, 0}; };
    for (int b = 0; b < 13; ++b) {
      feed(*p, cells, 2, 2, key, {0, 1});
      // Tokens count when a block leaves the window, long after these cells were fed.
      if (b == 4) {
        cells[7].token = 50;
        cells[8].token = 51;
      }
    }
    ASSERT_EQ(p->units(), 4);
    const int64_t first = static_cast<int64_t>(cells.size());
    cells.push_back({50, first});
    cells.push_back({51, first + 1});
    BlockData d;
    d.n_tokens = 2;
    d.q.assign(1, {1, 0, 1, 0});
    d.k.assign(1, std::vector<float>(4, 0.0f));
    AttentionPlan plan;
    p->plan(0, {first, 2}, cells, d, plan);
    EXPECT_EQ(memory_cells(plan, 2), lexical > 0 ? range(6, 10) : range(10, 14))
        << "lexical " << lexical;
    // A prefill chunk of the same tokens follows attention alone.
    cells.resize(first);
    EXPECT_EQ(memory_cells(plan_query(*p, cells, {1, 0}, p->max_block()), 2), range(10, 14));
  }
}

// A unit's representatives are the keys that received the most attention while in the window:
// with one representative, block [6, 10) is found by its key at cell 8 (which received the
// attention), not by its first key.
TEST(MemoryRetrieval, RepresentativesAreTheKeysThatReceivedTheMostAttention) {
  for (bool attend_8 : {true, false}) {
    MemoryParams mp = small_blocks();
    auto p = make_memory_policy(mp, tiny_shape(2, 64));
    std::vector<KvCell> cells;
    auto key = [](int64_t c) {
      if (c == 8) return std::vector<float>{0, 1};
      if (c >= 10 && c < 14) return std::vector<float>{0, 0.5f};
      return std::vector<float>{1, 0};
    };
    auto received = [&](int64_t c) { return c == 8 && attend_8 ? 5.0f : 0.1f; };
    for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 2, key, {1, 1}, 0.0f, received);
    const auto got = memory_cells(plan_query(*p, cells, {0, 1}), 2);
    EXPECT_EQ(got, attend_8 ? range(6, 10) : range(10, 14)) << attend_8;
  }
}

TEST(MemoryPlan, BlocksEqualFullBeforeAnythingLeavesTheWindow) {
  MemoryParams mp;
  mp.kind = "blocks";
  mp.n_init = 2;
  mp.n_local = 8;
  mp.block_size = 4;
  auto p = make_memory_policy(mp, tiny_shape(2, 64));
  std::vector<KvCell> cells;
  auto key = [](int64_t) { return std::vector<float>{1, 0}; };
  feed(*p, cells, 6, 2, key, {1, 1});
  AttentionPlan plan = plan_query(*p, cells, {0, 1});
  EXPECT_EQ(plan.cells, range(0, 8));
  EXPECT_EQ(plan.key_pos, range(0, 8));
}

// The small `episodic` policy of the retrieval tests: 2 initial cells, a window of 16, events
// of exactly 4 tokens (with constant surprise), 8 tokens of similarity buffer and 16 of
// neighbours, 2 representatives each.
MemoryParams small_episodic() {
  MemoryParams mp;
  mp.kind = "episodic";
  mp.n_init = 2;
  mp.n_local = 16;
  mp.min_event = 4;
  mp.max_event = 4;
  mp.n_mem = 24;
  mp.contiguity = 2.0 / 3.0;
  mp.repr_topk = 2;
  mp.chunk_gate = -1e9;
  return mp;
}

// Keys for small_episodic(): event e covers cells [2 + 4e, 6 + 4e). Events 3 and 8 point along
// x; the others away from it, the later the further, so the ranking below the planted ones is
// strict.
std::vector<float> planted_key(int64_t c) {
  const int64_t e = (c - 2) / 4;
  if (e == 3 || e == 8) return {1, 0, 0};
  return {-0.01f * float(e + 1), 0, 1};
}

TEST(MemoryRetrieval, EpisodicReturnsPlantedEventsAndTheirNeighbours) {
  auto p = make_memory_policy(small_episodic(), tiny_shape(3, 128));
  std::vector<KvCell> cells;
  for (int b = 0; b < 20; ++b) feed(*p, cells, 4, 3, planted_key, {0, 0, 1});
  ASSERT_GE(p->units(), 12);
  AttentionPlan plan = plan_query(*p, cells, {1, 0, 0});
  // Events 2,3,4 and 7,8,9.
  EXPECT_EQ(memory_cells(plan, 2), cat({range(10, 22), range(30, 42)}));
}

// Plans layer 0 for a block of `n` new cells that all ask `query`, then applies the block (as
// the model does), so a retrieval the plan made is committed; returns the plan.
AttentionPlan step(MemoryPolicy& p, std::vector<KvCell>& cells, int n,
                   const std::function<std::vector<float>(int64_t)>& key,
                   const std::vector<float>& query) {
  const int64_t first = static_cast<int64_t>(cells.size());
  for (int i = 0; i < n; ++i) cells.push_back({1, first + i});
  BlockData d;
  d.n_tokens = n;
  d.q.assign(1, {});
  d.k.assign(1, {});
  for (int i = 0; i < n; ++i) {
    auto k = key(first + i);
    d.k[0].insert(d.k[0].end(), k.begin(), k.end());
    d.q[0].insert(d.q[0].end(), query.begin(), query.end());
  }
  d.surprise.assign(n, 0.0f);
  AttentionPlan plan;
  p.plan(0, {first, n}, cells, d, plan);
  Eviction ev;
  p.apply({first, n}, cells, d, ev);
  return plan;
}

TEST(MemoryRetrieval, DecodeStepsReuseTheLastRetrievalForRetrieveEveryTokens) {
  for (int every : {1, 4}) {
    MemoryParams mp = small_episodic();
    mp.retrieve_every = every;
    auto p = make_memory_policy(mp, tiny_shape(3, 128));
    std::vector<KvCell> cells;
    const auto key = planted_key;
    for (int b = 0; b < 20; ++b) feed(*p, cells, 4, 3, key, {0, 0, 1});
    const auto planted = cat({range(10, 22), range(30, 42)});
    // A two-token prompt block asking along x retrieves the planted events.
    EXPECT_EQ(memory_cells(step(*p, cells, 2, key, {1, 0, 0}), 2), planted) << every;
    // Decode steps asking along z: with retrieve_every 4 the prompt's choice (made at cell 80)
    // is kept for cells 82 and 83; at 84 it is 4 tokens old and z is scored afresh (z prefers
    // the earliest unplanted events). With 1 every step retrieves.
    const auto z_first = memory_cells(plan_query(*p, cells, {0, 0, 1}, 2), 2);
    ASSERT_NE(z_first, planted);
    ASSERT_EQ(z_first.front(), 2);
    for (int64_t c = 82; c < 86; ++c) {
      // plan() alone changes nothing: planning the same step twice gives the same plan.
      const auto again = memory_cells(plan_query(*p, cells, {0, 0, 1}, 1), 2);
      const auto got = memory_cells(step(*p, cells, 1, key, {0, 0, 1}), 2);
      EXPECT_EQ(got, again) << every << " at " << c;
      if (every == 4 && c < 84) {
        EXPECT_EQ(got, planted) << "reused at " << c;
      } else {
        EXPECT_EQ(got.front(), 2) << every << " at " << c;
        EXPECT_NE(got, planted) << every << " at " << c;
      }
    }
  }
}

// Prefill chunks (blocks of the policy's max_block() tokens, where the model cuts long inputs)
// reuse the last retrieval like decode steps do, while it is fewer than retrieve_every tokens
// old; a block of another size (a question) never does.
TEST(MemoryRetrieval, PrefillChunksReuseTheLastRetrievalQuestionsDoNot) {
  for (int every : {1, 1000}) {
    MemoryParams mp = small_blocks();
    mp.retrieve_every = every;
    auto p = make_memory_policy(mp, tiny_shape(2, 128));
    const int chunk = p->max_block();  // 128 - 2 - 8: memory shares an initial position
    ASSERT_EQ(chunk, 118);
    std::vector<KvCell> cells;
    // Block [6, 10) points along y, everything else along x.
    auto key = [](int64_t c) {
      return c >= 6 && c < 10 ? std::vector<float>{0, 1} : std::vector<float>{1, 0};
    };
    for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 2, key, {1, 1});
    // A chunk asking along y retrieves [6, 10).
    EXPECT_EQ(memory_cells(step(*p, cells, chunk, key, {0, 1}), 2), range(6, 10)) << every;
    // The next chunk asks along x: with retrieve_every 1000 the last retrieval is 117 tokens
    // old and is kept; with 1 the chunk retrieves afresh and loads an x block.
    const auto next = memory_cells(step(*p, cells, chunk, key, {1, 0}), 2);
    if (every == 1000) {
      EXPECT_EQ(next, range(6, 10));
    } else {
      EXPECT_NE(next, range(6, 10));
    }
    // A 10-token question asking along x retrieves afresh whatever retrieve_every is.
    EXPECT_NE(memory_cells(step(*p, cells, 10, key, {1, 0}), 2), range(6, 10)) << every;
  }
}

// The chunk gate (MemoryParams::chunk_gate, 3 nats by default): a prefill chunk loads a unit
// only if the unit matches its mean query that much better than the local window does.
TEST(MemoryRetrieval, APrefillChunkLoadsOnlyUnitsThatBeatTheWindowQuestionsAreNotGated) {
  for (bool window_along_y : {false, true}) {
    MemoryParams mp = small_blocks();
    mp.chunk_gate = MemoryParams{}.chunk_gate;
    ASSERT_EQ(mp.chunk_gate, 3.0);
    auto p = make_memory_policy(mp, tiny_shape(2, 128));
    const int chunk = p->max_block();
    std::vector<KvCell> cells;
    // Block [6, 10) points along y; the cells still in the window (18 on) along y as well, or
    // along x like everything else.
    auto key = [&](int64_t c) {
      const bool y = (c >= 6 && c < 10) || (window_along_y && c >= 18);
      return y ? std::vector<float>{0, 1} : std::vector<float>{1, 0};
    };
    for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 2, key, {1, 1});
    ASSERT_EQ(p->units(), 4);
    const auto weak = std::vector<float>{0, 1}, strong = std::vector<float>{0, 10};
    // Scores are q.k / sqrt(2): the weak query puts the block 0.71 nats above an x window.
    EXPECT_TRUE(memory_cells(plan_query(*p, cells, weak, chunk), 2).empty()) << window_along_y;
    // The strong one puts it 7.1 nats above an x window, and level with a y window.
    const auto got = memory_cells(plan_query(*p, cells, strong, chunk), 2);
    if (window_along_y) {
      EXPECT_TRUE(got.empty());
    } else {
      EXPECT_EQ(got, range(6, 10));
    }
    // A question (any block but a chunk or a decode step) is not gated.
    EXPECT_EQ(memory_cells(plan_query(*p, cells, weak, 10), 2), range(6, 10)) << window_along_y;
  }
}

// A chunk whose gate passed nothing has still retrieved: the next chunks reuse that choice of
// nothing while it is fresh, rather than scoring memory again at every chunk.
TEST(MemoryRetrieval, AChunkThatLoadedNothingIsReusedLikeAnyRetrieval) {
  for (int every : {1, 1000}) {
    MemoryParams mp = small_blocks();
    mp.chunk_gate = 3.0;
    mp.retrieve_every = every;
    auto p = make_memory_policy(mp, tiny_shape(2, 128));
    const int chunk = p->max_block();
    std::vector<KvCell> cells;
    auto key = [](int64_t c) {
      return c >= 6 && c < 10 ? std::vector<float>{0, 1} : std::vector<float>{1, 0};
    };
    for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 2, key, {1, 1});
    EXPECT_TRUE(memory_cells(step(*p, cells, chunk, key, {0, 1}), 2).empty());  // gated
    const auto next = memory_cells(step(*p, cells, chunk, key, {0, 10}), 2);
    if (every == 1000) {
      EXPECT_TRUE(next.empty());
    } else {
      EXPECT_EQ(next, range(6, 10));
    }
  }
}

TEST(MemoryRetrieval, BlocksAlsoReuseForDecodeStepsButPromptBlocksRetrieve) {
  MemoryParams mp = small_blocks();
  mp.retrieve_every = 8;
  auto p = make_memory_policy(mp, tiny_shape(2, 64));
  std::vector<KvCell> cells;
  auto key = [](int64_t c) {
    return c >= 6 && c < 10 ? std::vector<float>{0, 1} : std::vector<float>{1, 0};
  };
  for (int b = 0; b < 13; ++b) feed(*p, cells, 2, 2, key, {1, 1});
  EXPECT_EQ(memory_cells(step(*p, cells, 2, key, {0, 1}), 2), range(6, 10));
  // A decode step asking along x keeps block [6, 10)...
  EXPECT_EQ(memory_cells(step(*p, cells, 1, key, {1, 0}), 2), range(6, 10));
  // ...a prompt block never reuses.
  EXPECT_NE(memory_cells(step(*p, cells, 2, key, {1, 0}), 2), range(6, 10));
}

// Shared retrieval on a 2-layer policy whose layers see different keys: at layer 0 block
// [6, 10) points along y, at layer 1 block [10, 14) does (every other key along x). A question
// asking along y makes each layer find its own block; the policy then asks for a second reading
// in which both layers load both blocks, and decode steps after the question keep that choice.
TEST(MemoryRetrieval, AQuestionIsReadAgainWithEveryLayerLoadingWhatAnyLayerFound) {
  for (bool shared : {true, false}) {
    MemoryParams mp = small_blocks();
    mp.shared_retrieval = shared;
    ModelShape shape = tiny_shape(2, 64);
    shape.n_layer = 2;
    auto p = make_memory_policy(mp, shape);
    std::vector<KvCell> cells;
    auto key = [](int layer, int64_t c) {
      const int64_t lo = layer == 0 ? 6 : 10;
      return c >= lo && c < lo + 4 ? std::vector<float>{0, 1} : std::vector<float>{1, 0};
    };
    // Fills both layers' rows of a block of n new cells that all ask `query`.
    auto block = [&](int n, const std::vector<float>& query) {
      const int64_t first = static_cast<int64_t>(cells.size());
      for (int i = 0; i < n; ++i) cells.push_back({1, first + i});
      BlockData d;
      d.n_tokens = n;
      d.q.assign(2, {});
      d.k.assign(2, {});
      for (int l = 0; l < 2; ++l) {
        for (int i = 0; i < n; ++i) {
          const auto k = key(l, first + i);
          d.k[l].insert(d.k[l].end(), k.begin(), k.end());
          d.q[l].insert(d.q[l].end(), query.begin(), query.end());
        }
      }
      return d;
    };
    auto run = [&](int n, const std::vector<float>& query, bool* reread) {
      const BlockData d = block(n, query);
      const QueryBlock qb{static_cast<int64_t>(cells.size()) - n, n};
      std::vector<std::vector<int64_t>> mem(2);
      AttentionPlan plan;
      for (int l = 0; l < 2; ++l) {
        p->plan(l, qb, cells, d, plan);
        mem[l] = memory_cells(plan, 2);
      }
      *reread = p->reread(qb);
      if (*reread) {
        for (int l = 0; l < 2; ++l) {
          p->plan(l, qb, cells, d, plan);
          mem[l] = memory_cells(plan, 2);
        }
        EXPECT_FALSE(p->reread(qb)) << "a block is read at most twice";
      }
      Eviction ev;
      p->apply(qb, cells, d, ev);
      return mem;
    };
    bool again = false;
    for (int b = 0; b < 13; ++b) run(2, {1, 1}, &again);
    ASSERT_EQ(p->units(), 4);
    auto mem = run(2, {0, 1}, &again);
    EXPECT_EQ(again, shared);
    if (shared) {
      EXPECT_EQ(mem[0], range(6, 14));
      EXPECT_EQ(mem[1], range(6, 14));
    } else {
      EXPECT_EQ(mem[0], range(6, 10));
      EXPECT_EQ(mem[1], range(10, 14));
    }
    // A decode step asking along x reuses the question's choice at each layer, and is never
    // read twice.
    mem = run(1, {1, 0}, &again);
    EXPECT_FALSE(again);
    EXPECT_EQ(mem[0], shared ? range(6, 14) : range(6, 10));
    EXPECT_EQ(mem[1], shared ? range(6, 14) : range(10, 14));
  }
}

TEST(MemorySegmentation, SurpriseAboveMeanPlusGammaStdOpensAnEvent) {
  SurpriseSegmenter seg({.gamma = 1.0, .tau = 4, .min_event = 2, .max_event = 100});
  const std::vector<double> s = {1, 1, 2, 1, 1, 5, 1, 1, 1, 1, 6, 7, 1, 1};
  std::vector<int> cuts;
  for (size_t i = 0; i < s.size(); ++i) {
    if (seg.push(s[i])) cuts.push_back(static_cast<int>(i));
  }
  // 2 at index 2: preceding {1,1}: mean 1, std 0 -> boundary. 5 at 5 -> boundary. 6 at 10 ->
  // boundary; 7 at 11 is also above threshold but the event would have 1 token: merged.
  EXPECT_EQ(cuts, (std::vector<int>{2, 5, 10}));
}

TEST(MemorySegmentation, GammaRaisesTheThreshold) {
  SurpriseSegmenter seg({.gamma = 3.0, .tau = 8, .min_event = 1, .max_event = 100});
  const std::vector<double> s = {1, 2, 1, 2, 1, 2, 3, 1, 2, 9};
  std::vector<int> cuts;
  for (size_t i = 0; i < s.size(); ++i) {
    if (seg.push(s[i])) cuts.push_back(static_cast<int>(i));
  }
  // mean ~1.5, std ~0.5: 3 is exactly mean + 3 std (not above); 9 is far above.
  EXPECT_EQ(cuts, (std::vector<int>{9}));
}

TEST(MemorySegmentation, MaxEventCutsLongRunsAndMinEventMergesShortOnes) {
  SurpriseSegmenter seg({.gamma = 0.0, .tau = 16, .min_event = 3, .max_event = 5});
  std::vector<int> cuts;
  for (int i = 0; i < 17; ++i) {
    if (seg.push(0.0)) cuts.push_back(i);  // flat: no surprise boundary
  }
  EXPECT_EQ(cuts, (std::vector<int>{5, 10, 15}));
  seg.reset();
  cuts.clear();
  // Alternating spikes would cut every other token; min_event 3 keeps events >= 3 tokens.
  for (int i = 0; i < 12; ++i) {
    if (seg.push(i % 2 ? 10.0 : 0.0)) cuts.push_back(i);
  }
  for (size_t j = 1; j < cuts.size(); ++j) EXPECT_GE(cuts[j] - cuts[j - 1], 3);
  ASSERT_FALSE(cuts.empty());
  EXPECT_GE(cuts[0], 3);
}

// Brute force straight from the definitions, over a labelling of the nodes.
double modularity_brute(const std::vector<double>& A, int m, const std::vector<int>& label) {
  double two_w = 0;
  std::vector<double> k(m, 0);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      k[i] += A[i * m + j];
      two_w += A[i * m + j];
    }
  }
  double q = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      if (label[i] == label[j]) q += A[i * m + j] - k[i] * k[j] / two_w;
    }
  }
  return q / two_w;
}

double conductance_brute(const std::vector<double>& A, int m, const std::vector<int>& label) {
  double cut = 0, vol0 = 0, vol1 = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      (label[i] == 0 ? vol0 : vol1) += A[i * m + j];
      if (label[i] == 0 && label[j] == 1) cut += A[i * m + j];
    }
  }
  const double d = std::min(vol0, vol1);
  return d > 0 ? cut / d : 1.0;
}

TEST(MemoryGraph, SplitMetricsMatchBruteForce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (int m : {2, 5, 9}) {
    std::vector<double> A(m * m);
    for (int i = 0; i < m; ++i) {
      for (int j = i; j < m; ++j) A[i * m + j] = A[j * m + i] = (i == j) ? 0 : u(rng);
    }
    const auto mod = split_modularity(A, m);
    const auto con = split_conductance(A, m);
    int best_mod = 1, best_con = 1;
    for (int s = 0; s <= m; ++s) {
      std::vector<int> label(m);
      for (int i = 0; i < m; ++i) label[i] = i < s ? 0 : 1;
      EXPECT_NEAR(mod[s], modularity_brute(A, m, label), 1e-12) << "m " << m << " s " << s;
      EXPECT_NEAR(con[s], conductance_brute(A, m, label), 1e-12) << "m " << m << " s " << s;
      if (s >= 1 && s <= m - 1) {
        if (mod[s] > mod[best_mod]) best_mod = s;
        if (con[s] < con[best_con]) best_con = s;
      }
    }
    EXPECT_EQ(best_split(A, m, 1, m - 1, 1, Refine::modularity), best_mod);
    EXPECT_EQ(best_split(A, m, 1, m - 1, 1, Refine::conductance), best_con);
  }
}

TEST(MemoryGraph, RefinementFindsTheCommunityBoundary) {
  // Two cliques [0,4) and [4,10) joined by weak edges: both metrics split at 4.
  const int m = 10;
  std::vector<double> A(m * m, 0.05);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      if (i == j)
        A[i * m + j] = 0;
      else if ((i < 4) == (j < 4))
        A[i * m + j] = 1;
    }
  }
  EXPECT_EQ(best_split(A, m, 2, 8, 6, Refine::modularity), 4);
  EXPECT_EQ(best_split(A, m, 2, 8, 6, Refine::conductance), 4);
  EXPECT_EQ(best_split(A, m, 2, 8, 6, Refine::none), 6);
}

TEST(MemoryParams, DefaultsScaleWithTheTrainedContext) {
  MemoryParams mp;
  mp.kind = "episodic";
  const MemoryParams r = resolve_memory_params(mp, tiny_shape(8, 512));
  EXPECT_EQ(r.n_local, 384);
  EXPECT_EQ(r.n_init, 4);  // as sinks' n_sink, so that the two compare at equal budgets
  EXPECT_EQ(r.n_mem, 128);
  EXPECT_EQ(r.tau, 384);
  EXPECT_EQ(r.max_event, 64);
  mp.kind = "sinks";
  auto p = make_memory_policy(mp, tiny_shape(8, 512));
  EXPECT_EQ(p->max_block(), 512 - 4 - 384);
  // Retrieved memory takes no position of its own: episodic cuts the same chunks as sinks.
  mp.kind = "episodic";
  EXPECT_EQ(make_memory_policy(mp, tiny_shape(8, 512))->max_block(), 512 - 4 - 384);
  mp.n_init = 0;  // ... except without initial tokens, where memory takes position 0
  EXPECT_EQ(make_memory_policy(mp, tiny_shape(8, 512))->max_block(), 512 - 1 - 384);
}

void expect_refused(MemoryParams mp, const std::string& flag, const std::string& value) {
  try {
    resolve_memory_params(mp, tiny_shape(8, 512));
    ADD_FAILURE() << "accepted " << flag << " " << value;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(flag), std::string::npos) << what;
    EXPECT_NE(what.find(value), std::string::npos) << what;
  }
}

TEST(MemoryParams, BadParametersAreRefusedNamingFlagAndValue) {
  MemoryParams mp;
  mp.kind = "sinks";
  mp.n_local = 600;
  expect_refused(mp, "--n-local", "600");
  mp.n_local = 0;
  expect_refused(mp, "--n-local", "0");
  mp = {};
  mp.kind = "sinks";
  mp.n_sink = 0;
  expect_refused(mp, "--n-sink", "0");
  mp = {};
  mp.kind = "episodic";
  mp.gamma = -0.5;
  expect_refused(mp, "--gamma", "-0.5");
  mp = {};
  mp.kind = "episodic";
  mp.n_mem = 0;
  expect_refused(mp, "--n-mem", "0");
  mp = {};
  mp.kind = "episodic";
  mp.min_event = 10;
  mp.max_event = 5;
  expect_refused(mp, "--max-event", "5");
  mp = {};
  mp.kind = "blocks";
  mp.topk = 0;
  expect_refused(mp, "--topk", "0");
  mp = {};
  mp.kind = "blocks";
  mp.block_size = 0;
  expect_refused(mp, "--block-size", "0");
  mp = {};
  mp.kind = "episodic";
  mp.contiguity = 1.0;
  expect_refused(mp, "--contiguity", "1");
  mp = {};
  mp.kind = "blocks";
  mp.chunk_gate = std::nan("");
  expect_refused(mp, "--chunk-gate", "nan");
  mp = {};
  mp.kind = "lru";
  expect_refused(mp, "--memory", "lru");
}

TEST(MemoryParams, EveryPolicyRefusesWindowsBudgetsAndThresholdsOutOfRange) {
  auto with = [](const std::string& kind, const std::function<void(MemoryParams&)>& set) {
    MemoryParams mp;
    mp.kind = kind;
    set(mp);
    return mp;
  };
  // n_local at or past the trained context (512), for every policy that has a window.
  for (const char* kind : {"window", "sinks", "blocks", "episodic"}) {
    expect_refused(with(kind, [](MemoryParams& m) { m.n_local = 4096; }), "--n-local", "4096");
    expect_refused(with(kind, [](MemoryParams& m) { m.n_local = 512; }), "--n-local", "512");
  }
  // Near INT_MAX, their sum must not overflow (found by the session fuzzer; UBSan checks it).
  expect_refused(with("sinks",
                      [](MemoryParams& m) {
                        m.n_sink = 2000000000;
                        m.n_local = 2000000000;
                      }),
                 "--n-local", "2000000000");
  // The initial tokens count against the trained context too.
  expect_refused(with("episodic", [](MemoryParams& m) { m.n_init = 200; }), "--n-local", "384");
  // -1 is "default"; other negative values are refused rather than silently defaulted.
  expect_refused(with("episodic", [](MemoryParams& m) { m.n_init = -5; }), "--n-init", "-5");
  expect_refused(with("episodic", [](MemoryParams& m) { m.n_mem = -2; }), "--n-mem", "-2");
  expect_refused(with("episodic", [](MemoryParams& m) { m.tau = -7; }), "--tau", "-7");
  expect_refused(with("blocks", [](MemoryParams& m) { m.topk = -3; }), "--topk", "-3");
  expect_refused(with("window", [](MemoryParams& m) { m.n_local = -9; }), "--n-local", "-9");
  // Zero budgets.
  expect_refused(with("episodic", [](MemoryParams& m) { m.repr_topk = 0; }), "--repr-topk", "0");
  expect_refused(with("blocks", [](MemoryParams& m) { m.repr_topk = 0; }), "--repr-topk", "0");
  expect_refused(with("episodic", [](MemoryParams& m) { m.min_event = 0; }), "--min-event", "0");
  expect_refused(with("episodic", [](MemoryParams& m) { m.retrieve_every = 0; }),
                 "--retrieve-every", "0");
  expect_refused(with("blocks", [](MemoryParams& m) { m.retrieve_every = -1; }), "--retrieve-every",
                 "-1");
  // A similarity buffer (n_mem x (1 - contiguity)) smaller than the longest event.
  expect_refused(with("episodic", [](MemoryParams& m) { m.n_mem = 40; }), "--n-mem", "40");
  // Thresholds: gamma < 0, NaN or infinite; tau below 2; contiguity outside [0, 1).
  expect_refused(with("episodic", [](MemoryParams& m) { m.gamma = -1; }), "--gamma", "-1");
  expect_refused(with("episodic", [](MemoryParams& m) { m.gamma = std::nan(""); }), "--gamma",
                 "nan");
  expect_refused(with("episodic", [](MemoryParams& m) { m.gamma = INFINITY; }), "--gamma", "inf");
  expect_refused(with("episodic", [](MemoryParams& m) { m.tau = 1; }), "--tau", "1");
  expect_refused(with("episodic", [](MemoryParams& m) { m.contiguity = -0.1; }), "--contiguity",
                 "-0.1");
  // An event longer than the window could never be whole in it.
  expect_refused(with("episodic", [](MemoryParams& m) { m.max_event = 400; }), "--max-event",
                 "400");
  // A block longer than the window.
  expect_refused(with("blocks", [](MemoryParams& m) { m.block_size = 385; }), "--block-size",
                 "385");
  // full: a negative context.
  expect_refused(with("full", [](MemoryParams& m) { m.n_ctx = -1; }), "--ctx", "-1");
  // The defaults themselves are accepted by every policy.
  for (const char* kind : {"full", "window", "sinks", "blocks", "episodic"}) {
    EXPECT_NO_THROW(resolve_memory_params(with(kind, [](MemoryParams&) {}), tiny_shape(8, 512)))
        << kind;
  }
}

}  // namespace
}  // namespace engram
