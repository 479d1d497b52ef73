// Hybrid retrieval (full text + cosine over stored embeddings, reciprocal rank fusion) on both
// store backends.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "agent_memory_backends.h"
#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram {
namespace {

using agent_memory::hybrid_search;
using agent_memory::HybridParams;
using agent_memory::NewMemory;
using agent_memory_test::PostgresBackend;
using agent_memory_test::SqliteBackend;

template <typename Backend>
class HybridSearchTest : public agent_memory_test::StoreFixture<Backend> {
 protected:
  void SetUp() override {
    agent_memory_test::StoreFixture<Backend>::SetUp();
    if (this->IsSkipped() || this->HasFatalFailure()) return;
    store = agent_memory::open_memory_store(this->location());
    a = add("User plays chess", {1, 0, 0});
    b = add("User likes jazz music", {0, 1, 0});
    c = add("User plays chess and jazz piano", {0.7f, 0.7f, 0});
    d = add("User hikes on weekends", {});
    e = add("User swims", {1, 0});  // another encoder's dimension
    NewMemory other;
    other.summary = "Other user likes jazz and chess";
    other.embedding = {1, 0, 0};
    store->add("other", other, "t");
  }
  int64_t add(const std::string& summary, std::vector<float> embedding) {
    NewMemory m;
    m.summary = summary;
    m.embedding = std::move(embedding);
    return store->add("u", m, "t").id;
  }
  std::vector<int64_t> ids(const std::vector<agent_memory::SearchHit>& hits) {
    std::vector<int64_t> out;
    for (const auto& h : hits) out.push_back(h.memory.id);
    return out;
  }
  std::unique_ptr<agent_memory::MemoryStore> store;
  int64_t a = 0, b = 0, c = 0, d = 0, e = 0;
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(HybridSearchTest, Backends, agent_memory_test::BackendNames);

TYPED_TEST(HybridSearchTest, TextOnlyFollowsTheFullTextRanking) {
  auto& s = *this->store;
  const auto text = this->ids(s.search("u", "chess", 10));
  EXPECT_EQ(this->ids(hybrid_search(s, "u", "chess", {}, 10)), text);
  HybridParams no_dense;
  no_dense.dense_weight = 0;
  EXPECT_EQ(this->ids(hybrid_search(s, "u", "chess", {0, 1, 0}, 10, no_dense)), text);
}

TYPED_TEST(HybridSearchTest, DenseOnlyRanksByCosine) {
  auto& s = *this->store;
  // b (cos 1), c (0.707), a (0); d has no embedding, e another dimension.
  EXPECT_EQ(this->ids(hybrid_search(s, "u", "", {0, 2, 0}, 10)),
            (std::vector<int64_t>{this->b, this->c, this->a}));
  EXPECT_EQ(this->ids(hybrid_search(s, "u", "", {1, 0}, 10)), (std::vector<int64_t>{this->e}));
}

TYPED_TEST(HybridSearchTest, BothListsBeatOne) {
  auto& s = *this->store;
  // Text "jazz": b then c. Dense [1,0,0]: a, c, b. Fused: b and c are in both lists, a in one.
  const auto hits = hybrid_search(s, "u", "jazz", {1, 0, 0}, 10);
  ASSERT_EQ(this->ids(hits), (std::vector<int64_t>{this->b, this->c, this->a}));
  EXPECT_NEAR(hits[0].score, 1.0 / 61 + 1.0 / 63, 1e-12);
  EXPECT_NEAR(hits[2].score, 1.0 / 61, 1e-12);
  EXPECT_EQ(hybrid_search(s, "u", "jazz", {1, 0, 0}, 2).size(), 2u);
  // Weighting the dense list up puts its best first (rrf_k 0: a = 3/1, b = 1/1 + 3/3,
  // c = 1/2 + 3/2).
  HybridParams dense_heavy;
  dense_heavy.rrf_k = 0;
  dense_heavy.dense_weight = 3;
  EXPECT_EQ(hybrid_search(s, "u", "jazz", {1, 0, 0}, 10, dense_heavy)[0].memory.id, this->a);
}

TYPED_TEST(HybridSearchTest, OnlyTheUsersMemoriesAndClearErrors) {
  auto& s = *this->store;
  for (const auto& h : hybrid_search(s, "nobody", "jazz chess", {1, 0, 0}, 10))
    ADD_FAILURE() << "another user's memory: " << h.memory.summary;
  for (const auto& h : hybrid_search(s, "u", "jazz chess", {1, 0, 0}, 10))
    EXPECT_NE(h.memory.summary, "Other user likes jazz and chess");
  EXPECT_THROW(hybrid_search(s, "u", "x", {std::nanf("")}, 10), Error);
  EXPECT_THROW(hybrid_search(s, "u", "x", {}, 0), Error);
  HybridParams bad;
  bad.text_candidates = 0;
  EXPECT_THROW(hybrid_search(s, "u", "x", {}, 5, bad), Error);
  bad = HybridParams{};
  bad.rrf_k = -1;
  EXPECT_THROW(hybrid_search(s, "u", "x", {}, 5, bad), Error);
}

}  // namespace
}  // namespace engram
