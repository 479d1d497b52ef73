// A store records the one encoder whose embeddings it holds, on both backends: the first claim
// records it, the same identity is accepted again (also after reopening), another is refused
// with an error naming both.
#include <gtest/gtest.h>

#include "agent_memory_backends.h"
#include "engram/agent_memory.h"
#include "engram/error.h"

namespace engram {
namespace {

using agent_memory_test::PostgresBackend;
using agent_memory_test::SqliteBackend;

template <typename Backend>
class EmbeddingEncoderTest : public agent_memory_test::StoreFixture<Backend> {};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(EmbeddingEncoderTest, Backends, agent_memory_test::BackendNames);

TYPED_TEST(EmbeddingEncoderTest, FirstClaimIsRecordedAndAnotherRefused) {
  {
    auto store = agent_memory::open_memory_store(this->location());
    EXPECT_EQ(store->claim_embedding_encoder("bert:a:384:mean:0001"), "bert:a:384:mean:0001");
    EXPECT_NO_THROW(
        agent_memory::claim_embedding_encoder(*store, "bert:a:384:mean:0001", "--embed-model a"));
  }
  auto store = agent_memory::open_memory_store(this->location());
  EXPECT_EQ(store->claim_embedding_encoder("model:b:384:mean:0002"), "bert:a:384:mean:0001");
  try {
    agent_memory::claim_embedding_encoder(*store, "model:b:384:mean:0002", "the model b.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("made by encoder 'bert:a:384:mean:0001', but the model b.gguf embeds with "
                     "'model:b:384:mean:0002'"),
              std::string::npos)
        << m;
  }
  EXPECT_THROW(store->claim_embedding_encoder(""), Error);
  EXPECT_THROW(store->claim_embedding_encoder(std::string(2000, 'x')), Error);
}

}  // namespace
}  // namespace engram
