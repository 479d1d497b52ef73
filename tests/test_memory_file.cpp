// Memory that outgrows RAM: the page file (append-only, checksummed, LRU-cached), the K/V store
// that moves settled cells into it, and streams through blocks/episodic that give the same
// logits, bit for bit, with their memory units in a file as in RAM.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "cli_runner.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "memory/kv_store.h"
#include "memory/page_file.h"
#include "random_vectors.h"

namespace engram {
namespace {

using testing_cli::TempFile;

std::vector<uint8_t> page_of(size_t bytes, int seed) {
  std::vector<uint8_t> p(bytes);
  for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(seed * 131 + i * 7 + (i >> 8));
  return p;
}

TEST(PageFile, PagesComeBackAsWrittenThroughASmallCache) {
  TempFile path("pages.bin");
  PageFile f(path.path(), 1000, 2);
  for (int i = 0; i < 5; ++i) f.append(page_of(1000, i).data());
  EXPECT_EQ(f.pages(), 5);
  EXPECT_EQ(f.file_bytes(), 5000u);
  EXPECT_EQ(std::filesystem::file_size(path.path()), 5000u);
  // Reads in an order that makes the 2-page cache evict; each read is checked whole.
  const int order[] = {0, 1, 0, 2, 3, 0, 4, 4, 1};
  for (int i : order) {
    const uint8_t* p = f.page(i);
    ASSERT_EQ(std::memcmp(p, page_of(1000, i).data(), 1000), 0) << "page " << i;
  }
  // Misses: 0 1 (0 hit) 2 (evicts 1) 3 (evicts 0) 0 (evicts 2) 4 (evicts 3) (4 hit) 1 (evicts 0).
  EXPECT_EQ(f.reads(), 7);
  EXPECT_EQ(f.cache_bytes(), 2000u);
  // A pass that does not keep (keep false): cached pages (1 and 4 now) come from the cache,
  // others are read once into a side buffer, and the cache keeps what it had.
  for (int i : {0, 0, 1, 2, 2, 3, 4}) {
    ASSERT_EQ(std::memcmp(f.page(i, false), page_of(1000, i).data(), 1000), 0) << "page " << i;
  }
  EXPECT_EQ(f.reads(), 7 + 3);  // pages 0, 2, 3
  EXPECT_EQ(f.cache_bytes(), 2000u);
  const int64_t before = f.reads();
  f.page(1);
  f.page(4);
  EXPECT_EQ(f.reads(), before);  // still cached
  EXPECT_THROW(f.page(5), Error);
  f.clear();
  EXPECT_EQ(f.pages(), 0);
  EXPECT_EQ(std::filesystem::file_size(path.path()), 0u);
}

TEST(PageFile, AChangedByteOnDiskIsAnErrorNamingThePage) {
  TempFile path("pages.bin");
  PageFile f(path.path(), 4096, 1);
  for (int i = 0; i < 3; ++i) f.append(page_of(4096, i).data());
  {
    std::fstream io(path.path(), std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(4096 + 100);
    const char x = static_cast<char>(page_of(4096, 1)[100] ^ 0x01);
    io.write(&x, 1);
  }
  EXPECT_EQ(std::memcmp(f.page(0), page_of(4096, 0).data(), 4096), 0);
  try {
    f.page(1);
    FAIL() << "a damaged page was read back";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("page 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::memcmp(f.page(2), page_of(4096, 2).data(), 4096), 0);
}

TEST(PageFile, TemporaryFilesLeaveNothingInTheDirectory) {
  TempFile dir("kvdir");
  std::filesystem::create_directories(dir.path());
  {
    auto f = PageFile::temporary(dir.path(), 256, 4);
    f->append(page_of(256, 9).data());
    EXPECT_EQ(std::memcmp(f->page(0), page_of(256, 9).data(), 256), 0);
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  }
  try {
    PageFile::temporary(dir.path() + "/no/such/dir", 256, 4);
    FAIL() << "a file was created in a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir"), std::string::npos) << e.what();
  }
}

// Every cell's key and value, read back after the store moved them to its file, are the bytes
// written, through a one-page cache; cells still in RAM keep their direct pointers.
TEST(KvStoreFile, SettledCellsMoveToTheFileAndReadBackExactly) {
  for (bool f16 : {false, true}) {
    TempFile dir("kvdir");
    std::filesystem::create_directories(dir.path());
    const int n_layer = 2, kv_dim = 24;
    KvStore kv(n_layer, kv_dim, f16);
    kv.use_file(dir.path(), 1);  // the smallest cache: one page
    std::mt19937 rng(7);
    std::normal_distribution<float> d;
    const int64_t n = 5 * KvStore::kPageCells + 17;
    std::vector<float> k(size_t(n_layer) * n * kv_dim), v(k.size());
    for (auto& x : k) x = d(rng);
    for (auto& x : v) x = d(rng);
    auto at = [&](int l, int64_t c) { return (size_t(l) * n + c) * kv_dim; };
    // Written in blocks, settling behind, as a stream does.
    for (int64_t c0 = 0; c0 < n; c0 += 50) {
      const int64_t c1 = std::min<int64_t>(n, c0 + 50);
      kv.resize(c1);
      for (int l = 0; l < n_layer; ++l) {
        for (int64_t c = c0; c < c1; ++c) kv.write(l, c, &k[at(l, c)], &v[at(l, c)]);
      }
      kv.settle(c1 - 30);
    }
    EXPECT_EQ(kv.in_ram_begin(), 4 * KvStore::kPageCells);  // whole pages below n - 30 only
    EXPECT_EQ(kv.size(), n);
    const uint64_t page = uint64_t(n_layer) * 2 * KvStore::kPageCells * kv_dim * (f16 ? 2 : 4);
    EXPECT_EQ(kv.file_bytes(), 4 * page);
    std::vector<float> out(kv_dim);
    KvStore ram(n_layer, kv_dim, f16);  // the same cells, all in RAM: what reads must give
    ram.resize(n);
    for (int l = 0; l < n_layer; ++l) {
      for (int64_t c = 0; c < n; ++c) ram.write(l, c, &k[at(l, c)], &v[at(l, c)]);
    }
    std::vector<float> want(kv_dim);
    for (int pass = 0; pass < 2; ++pass) {  // forwards, then backwards: the cache evicts
      for (int64_t i = 0; i < n; ++i) {
        const int64_t c = pass == 0 ? i : n - 1 - i;
        for (int l = 0; l < n_layer; ++l) {
          kv.read_k(l, c, out.data());
          ram.read_k(l, c, want.data());
          ASSERT_EQ(out, want) << "key, cell " << c << " layer " << l << " f16 " << f16;
          kv.read_v(l, c, out.data());
          ram.read_v(l, c, want.data());
          ASSERT_EQ(out, want) << "value, cell " << c << " layer " << l << " f16 " << f16;
        }
      }
    }
    if (!f16) {
      EXPECT_EQ(kv.k(1, n - 1)[3], k[at(1, n - 1) + 3]);
    }
    // Forgetting everything empties the file.
    kv.resize(0);
    EXPECT_EQ(kv.file_bytes(), 0u);
    EXPECT_EQ(kv.in_ram_begin(), 0);
  }
}

const std::string kGolden = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

using testing_util::random_tokens;

// A long stream through blocks and episodic: with memory units in a file, every logit of the
// prefill and of decode steps is bit-identical to the run with everything in RAM, while RAM
// holds a fraction of the K/V.
TEST(MemoryFile, StreamsGiveTheSameLogitsBitForBitWithUnitsOnDisk) {
  auto model = Model::load(kGolden + "llama_f32.gguf");
  ThreadPool pool(2);
  const int n_vocab = model->config().n_vocab;
  const auto tokens = random_tokens(2000, n_vocab, 11);
  for (const char* kind : {"blocks", "episodic"}) {
    for (bool f16 : {false, true}) {
      TempFile dir("kvdir");
      std::filesystem::create_directories(dir.path());
      MemoryParams p;
      p.kind = kind;
      p.kv_f16 = f16;
      p.retrieve_every = 1;  // retrieve at every block: as many reads from the file as can be
      const ModelShape shape = model_shape(model->config());
      Context ram(*model, pool, {}, make_memory_policy(p, shape));
      p.kv_dir = dir.path();
      p.kv_cache_mib = 1;
      Context disk(*model, pool, {}, make_memory_policy(p, shape));
      for (size_t i = 0; i < tokens.size(); i += 211) {
        const size_t n = std::min<size_t>(211, tokens.size() - i);
        const std::span<const int32_t> part(tokens.data() + i, n);
        ram.eval(part, true);
        disk.eval(part, true);
        for (size_t t = 0; t < n; ++t) {
          for (int v = 0; v < n_vocab; ++v) {
            ASSERT_EQ(ram.logits(t)[v], disk.logits(t)[v])
                << kind << " f16 " << f16 << " token " << i + t << " vocab " << v;
          }
        }
      }
      for (int i = 0; i < 20; ++i) {  // decode steps, and a question-sized block
        const int32_t one[1] = {tokens[i]};
        ram.eval(one);
        disk.eval(one);
        ASSERT_EQ(std::vector<float>(ram.logits().begin(), ram.logits().end()),
                  std::vector<float>(disk.logits().begin(), disk.logits().end()))
            << kind << " decode " << i;
      }
      const auto q = std::span<const int32_t>(tokens.data(), 9);
      ram.eval(q);
      disk.eval(q);
      ASSERT_EQ(std::vector<float>(ram.logits().begin(), ram.logits().end()),
                std::vector<float>(disk.logits().begin(), disk.logits().end()))
          << kind << " question";
      for (int l = 0; l < model->config().n_layer; ++l) {
        const auto a = ram.attended_positions(l), b = disk.attended_positions(l);
        EXPECT_EQ(std::vector<int64_t>(a.begin(), a.end()),
                  std::vector<int64_t>(b.begin(), b.end()));
      }
      const MemoryStats m = disk.memory_stats();
      EXPECT_EQ(ram.memory_stats().bytes_on_disk, 0u);
      EXPECT_GT(m.bytes_on_disk, 0u) << kind;
      EXPECT_LT(disk.memory_bytes(), ram.memory_bytes()) << kind;
      EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
      // Starting over empties the file, and the stream runs the same again.
      disk.clear();
      EXPECT_EQ(disk.memory_stats().bytes_on_disk, 0u);
    }
  }
}

TEST(MemoryFile, OnlyPoliciesWithMemoryUnitsTakeADirectory) {
  auto model = Model::load(kGolden + "llama_f32.gguf");
  const ModelShape shape = model_shape(model->config());
  for (const char* kind : {"full", "window", "sinks"}) {
    MemoryParams p;
    p.kind = kind;
    p.kv_dir = "/tmp";
    try {
      make_memory_policy(p, shape);
      FAIL() << kind << " accepted --kv-dir";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--kv-dir"), std::string::npos) << e.what();
    }
  }
  MemoryParams p;
  p.kind = "episodic";
  p.kv_dir = "/tmp";
  p.kv_cache_mib = 0;
  EXPECT_THROW(make_memory_policy(p, shape), Error);
  // A directory that does not exist: the context says which.
  p.kv_cache_mib = 4;
  p.kv_dir = "/nonexistent/engram";
  ThreadPool pool(1);
  try {
    Context ctx(*model, pool, {}, make_memory_policy(p, shape));
    FAIL() << "a context was made with its memory file in a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/engram"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace engram
