// Saved sessions: a stream saved and resumed goes on bit for bit as if it had never stopped,
// for every policy (and with f16 K/V or memory units on disk); a file from another model, a
// truncated or damaged file, and records with wrong values (checksums made to match) are errors,
// never crashes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "chat/chat_note.h"
#include "cli_runner.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/session.h"
#include "engram/thread_pool.h"
#include "memory/page_file.h"
#include "random_vectors.h"

namespace engram {
namespace {

using testing_cli::slurp;
using testing_cli::TempFile;

const std::string kGolden = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

using testing_util::random_tokens;

std::vector<float> last_logits(const Context& c) {
  return std::vector<float>(c.logits().begin(), c.logits().end());
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

struct Case {
  const char* kind;
  bool f16;
  bool on_disk;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.kind << (c.f16 ? " f16" : "") << (c.on_disk ? " on disk" : "");
}

class SessionResume : public ::testing::TestWithParam<Case> {};

// A stream is read, saved and loaded; then the original and the resumed context read the same
// continuation (prefill chunks, decode steps, a question): every logit is equal.
TEST_P(SessionResume, GoesOnBitForBit) {
  const Case c = GetParam();
  auto model = Model::load(kGolden + "llama_f32.gguf");
  ThreadPool pool(2);
  const int n_vocab = model->config().n_vocab;
  const bool full = std::string(c.kind) == "full";
  const auto tokens = random_tokens(full ? 200 : 2000, n_vocab, 21);
  const size_t cut = full ? 120 : 1300;
  TempFile file("session.bin");
  TempFile dir("kvdir");
  std::filesystem::create_directories(dir.path());
  MemoryParams p;
  p.kind = c.kind;
  p.kv_f16 = c.f16;
  if (c.on_disk) p.kv_dir = dir.path();
  const ModelShape shape = model_shape(model->config());
  Context a(*model, pool, {}, make_memory_policy(p, shape));
  a.eval(std::span<const int32_t>(tokens.data(), cut));
  save_session(a, p, file.path());
  LoadedSession s = load_session(file.path(), *model, pool, {}, c.on_disk ? dir.path() : "", 1);
  Context& b = *s.ctx;
  EXPECT_EQ(s.memory.kind, c.kind);
  EXPECT_EQ(b.n_past(), a.n_past());
  EXPECT_EQ(b.memory_stats().units, a.memory_stats().units);
  EXPECT_EQ(b.memory_stats().cells_held, a.memory_stats().cells_held);
  EXPECT_EQ(b.tokens(), a.tokens());
  // Loading moved the settled cells to the memory file as it read them, as the stream had.
  EXPECT_EQ(b.memory_stats().bytes_on_disk, a.memory_stats().bytes_on_disk);
  if (c.on_disk) {
    EXPECT_GT(b.memory_stats().bytes_on_disk, 0u);
  }
  ASSERT_EQ(last_logits(b), last_logits(a));
  // The continuation: chunks, then decode steps, then a question-sized block.
  for (size_t i = cut; i < tokens.size(); i += 150) {
    const std::span<const int32_t> part(tokens.data() + i,
                                        std::min<size_t>(150, tokens.size() - i));
    a.eval(part);
    b.eval(part);
    ASSERT_EQ(last_logits(b), last_logits(a)) << c.kind << " at token " << i;
  }
  for (int i = 0; i < 12; ++i) {
    const int32_t one[1] = {tokens[i]};
    a.eval(one);
    b.eval(one);
    ASSERT_EQ(last_logits(b), last_logits(a)) << c.kind << " decode step " << i;
  }
  const std::span<const int32_t> question(tokens.data() + 5, 9);
  a.eval(question);
  b.eval(question);
  ASSERT_EQ(last_logits(b), last_logits(a)) << c.kind << " question";
  EXPECT_EQ(b.memory_stats().units, a.memory_stats().units);
  if (c.on_disk) {
    EXPECT_GT(b.memory_stats().bytes_on_disk, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, SessionResume,
                         ::testing::Values(Case{"full", false, false}, Case{"sinks", false, false},
                                           Case{"window", true, false},
                                           Case{"blocks", false, false},
                                           Case{"episodic", false, false},
                                           Case{"episodic", true, true},
                                           Case{"blocks", false, true}),
                         [](const auto& info) {
                           return std::string(info.param.kind) + (info.param.f16 ? "_f16" : "") +
                                  (info.param.on_disk ? "_disk" : "");
                         });

// One saved episodic session, shared by the refusal tests below.
class SessionFile : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(kGolden + "llama_f32.gguf");
    MemoryParams p;
    p.kind = "episodic";
    Context ctx(*model_, pool_, {}, make_memory_policy(p, model_shape(model_->config())));
    ctx.eval(random_tokens(700, model_->config().n_vocab, 5));
    ASSERT_GT(ctx.memory_stats().units, 3);
    save_session(ctx, p, file_.path());
    bytes_ = slurp(file_.path());
  }
  // Loads `bytes`; "" if it loaded, else the error.
  std::string load(const std::string& bytes) {
    TempFile f("variant.bin");
    spit(f.path(), bytes);
    try {
      load_session(f.path(), *model_, pool_, {});
      return "";
    } catch (const Error& e) {
      return e.what();
    }
  }
  // Record r's payload offset and length in bytes_.
  std::pair<size_t, size_t> record(int r) const {
    size_t at = 0;
    for (int i = 0;; ++i) {
      uint64_t n;
      std::memcpy(&n, bytes_.data() + at, 8);
      if (i == r) return {at + 8, size_t(n)};
      at += 16 + n;
    }
  }
  // bytes_ with payload byte `i` of record r xor-ed with x and the record's checksum made to
  // match: only the loader's own checks can refuse it.
  std::string forged(int r, size_t i, uint8_t x) const {
    std::string b = bytes_;
    const auto [at, n] = record(r);
    b[at + i] = static_cast<char>(b[at + i] ^ x);
    const uint64_t sum = PageFile::checksum(b.data() + at, n);
    std::memcpy(b.data() + at + n, &sum, 8);
    return b;
  }
  int records() const {
    int count = 0;
    for (size_t at = 0; at < bytes_.size(); ++count) {
      uint64_t n;
      std::memcpy(&n, bytes_.data() + at, 8);
      at += 16 + n;
    }
    return count;
  }

  ThreadPool pool_{2};
  std::unique_ptr<Model> model_;
  TempFile file_{"session.bin"};
  std::string bytes_;
};

TEST_F(SessionFile, LoadsAsSaved) {
  EXPECT_EQ(load(bytes_), "");
}

TEST_F(SessionFile, AnotherModelIsRefused) {
  auto other = Model::load(kGolden + "llama_f16.gguf");
  try {
    load_session(file_.path(), *other, pool_, {});
    FAIL() << "a session of another model was loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
}

TEST_F(SessionFile, TruncatedFilesAreRefused) {
  for (size_t len : {size_t(0), size_t(5), size_t(20), bytes_.size() / 3, bytes_.size() / 2,
                     bytes_.size() - 17, bytes_.size() - 1}) {
    EXPECT_NE(load(bytes_.substr(0, len)), "") << "cut at " << len;
  }
  // Cut exactly at a record boundary: the end marker is missing.
  const auto [at, n] = record(records() - 1);
  const std::string err = load(bytes_.substr(0, at - 8));
  EXPECT_NE(err.find("end"), std::string::npos) << err;
  EXPECT_NE(load(bytes_ + "x"), "");
}

TEST_F(SessionFile, AChangedByteFailsItsChecksum) {
  std::string b = bytes_;
  b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 0x10);
  const std::string err = load(b);
  EXPECT_NE(err.find("checksum"), std::string::npos) << err;
}

TEST_F(SessionFile, NotASessionIsNamedAsSuch) {
  const std::string err = load(forged(0, 0, 0x20));
  EXPECT_NE(err.find("not an engram session"), std::string::npos) << err;
}

// Wrong values with matching checksums, in every record but the K/V ones (whose floats are any
// floats): each load either succeeds (a harmless change) or throws engram::Error; under ASan a
// bad index would show as a crash.
TEST_F(SessionFile, ForgedRecordsNeverCrash) {
  std::mt19937 rng(3);
  int refused = 0, tried = 0;
  // Records: header, note, stream, policy state, 4 representative matrices, K/V..., end.
  for (int r : {0, 2, 3, 6}) {  // header, stream, policy state, a representative
    const size_t len = record(r).second;
    for (int k = 0; k < 60; ++k) {
      const size_t i = rng() % len;
      const uint8_t x = static_cast<uint8_t>(1u << (rng() % 8));
      ++tried;
      if (!load(forged(r, i, x)).empty()) ++refused;
    }
  }
  EXPECT_GT(refused, tried / 4);  // most fields are checked
}

TEST_F(SessionFile, TheNoteIsKeptAndFormat1FilesStillLoad) {
  {
    MemoryParams p;
    p.kind = "episodic";
    Context ctx(*model_, pool_, {}, make_memory_policy(p, model_shape(model_->config())));
    ctx.eval(random_tokens(300, model_->config().n_vocab, 6));
    const TempFile noted("noted.bin");
    const std::string note = std::string("{\"messages\": []}\0tail", 22);
    save_session(ctx, p, noted.path(), note);
    EXPECT_EQ(load_session(noted.path(), *model_, pool_, {}).note, note);
  }
  EXPECT_EQ(load_session(file_.path(), *model_, pool_, {}).note, "");
  // The header's version (after the 8-byte magic) set to v, its checksum made to match.
  const auto [head_at, head_n] = record(0);
  auto with_version = [&, head_at = head_at, head_n = head_n](std::string b, uint32_t v) {
    std::memcpy(b.data() + head_at + 8, &v, 4);
    const uint64_t sum = PageFile::checksum(b.data() + head_at, head_n);
    std::memcpy(b.data() + head_at + head_n, &sum, 8);
    return b;
  };
  // Format 2: no lexical weight, the header's last 8 bytes (a double); it loads with 0.
  std::string v2 = bytes_;
  v2.erase(head_at + head_n - 8, 8);
  const uint64_t n2 = head_n - 8;
  std::memcpy(v2.data() + head_at - 8, &n2, 8);
  const uint64_t sum2 = PageFile::checksum(v2.data() + head_at, n2);
  std::memcpy(v2.data() + head_at + n2, &sum2, 8);
  auto with_version2 = [&, head_at = head_at](std::string b, uint32_t v) {
    std::memcpy(b.data() + head_at + 8, &v, 4);
    const uint64_t sum = PageFile::checksum(b.data() + head_at, n2);
    std::memcpy(b.data() + head_at + n2, &sum, 8);
    return b;
  };
  {
    const TempFile f("v2.bin");
    std::ofstream(f.path(), std::ios::binary) << with_version2(v2, 2);
    EXPECT_EQ(load_session(f.path(), *model_, pool_, {}).memory.lexical, 0.0);
  }
  EXPECT_EQ(load_session(file_.path(), *model_, pool_, {}).memory.lexical, MemoryParams{}.lexical);
  // Format 1: no note record either.
  std::string v1 = v2;
  const auto [note_at, note_n] = record(1);
  v1.erase(note_at - 16, 16 + note_n);  // record(1) is measured on bytes_, 8 bytes further on
  EXPECT_EQ(load(with_version2(v1, 1)), "");
  // A format from the future is named as such.
  const std::string v4 = with_version(bytes_, 4);
  const std::string err = load(v4);
  EXPECT_NE(err.find("format 4"), std::string::npos) << err;
}

// The note `engram chat --session` keeps: bytes come back exactly (a reply cut mid-character,
// NULs), and every cut or inflated count is refused by name.
TEST(ChatNote, RoundTripsBytesAndRefusesDamage) {
  chat::ChatState c;
  c.chat_template = "chatml";
  c.history = {{"system", "Be kind."},
               {"user", std::string("caf\xC3", 4)},
               {"assistant", std::string("a\0b", 3)}};
  c.tokens = {1, 2, 30000, 7};
  c.text = std::string("<|im_start|>\xE2\x82", 14);
  c.dropped_space = 5;
  const std::string note = chat::encode_chat_note(c);
  const chat::ChatState d = chat::decode_chat_note(note, "x.session");
  EXPECT_EQ(d.chat_template, c.chat_template);
  ASSERT_EQ(d.history.size(), c.history.size());
  for (size_t i = 0; i < c.history.size(); ++i) {
    EXPECT_EQ(d.history[i].role, c.history[i].role);
    EXPECT_EQ(d.history[i].content, c.history[i].content);
  }
  EXPECT_EQ(d.tokens, c.tokens);
  EXPECT_EQ(d.text, c.text);
  EXPECT_EQ(d.dropped_space, c.dropped_space);
  for (size_t len = 0; len < note.size(); ++len) {
    EXPECT_THROW(chat::decode_chat_note(note.substr(0, len), "x.session"), Error) << len;
  }
  EXPECT_THROW(chat::decode_chat_note(note + "x", "x.session"), Error);
  // A message count far beyond the bytes left.
  std::string inflated = note;
  const size_t count_at = 14 + 8 + 6;  // after the magic line and the template name
  inflated[count_at + 6] = '\x7f';
  try {
    chat::decode_chat_note(inflated, "x.session");
    FAIL() << "an inflated count was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.session"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("message count"), std::string::npos) << e.what();
  }
}

TEST(SessionCli, ReadOnceAskLaterGivesTheSameAnswer) {
  using testing_cli::CliResult;
  using testing_cli::run_cli;
  const std::string model = "'" + kGolden + "llama_f32.gguf'";
  TempFile book("book.txt");
  {
    std::mt19937 rng(4);
    const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "went", "home"};
    std::string s;
    // Long enough to form events (and to be read under a progress bar, not echoed).
    while (s.size() < 24 * 1024) s += std::string(words[rng() % 9]) + (rng() % 9 ? " " : ". ");
    spit(book.path(), s);
  }
  TempFile session("book.session");
  const std::string ask = " -p 'what sat on the mat' -n 6 --temp 0 -t 1";
  const std::string common = "run -m " + model + " --memory episodic";
  const CliResult whole = run_cli(common + " -f '" + book.path() + "'" + ask);
  ASSERT_EQ(whole.status, 0) << whole.err;
  const CliResult saved = run_cli(common + " -f '" + book.path() + "' -n 0 -t 1 --save-session '" +
                                  session.path() + "'");
  ASSERT_EQ(saved.status, 0) << saved.err;
  EXPECT_NE(saved.err.find("saved session"), std::string::npos) << saved.err;
  const CliResult resumed =
      run_cli("run -m " + model + " --load-session '" + session.path() + "'" + ask);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("session: "), std::string::npos) << resumed.err;
  EXPECT_EQ(resumed.out, whole.out);
  // The session fixes the policy: memory flags are refused, storage flags are not.
  const CliResult flag =
      run_cli("run -m " + model + " --load-session '" + session.path() + "' --memory sinks" + ask);
  EXPECT_NE(flag.status, 0);
  EXPECT_NE(flag.err.find("--memory"), std::string::npos) << flag.err;
  // A session that could not be written is refused before anything is read or generated.
  const CliResult unwritable =
      run_cli("run -q -m " + model + " -p 'the cat' -n 5 --save-session /nonexistent/dir/s");
  EXPECT_NE(unwritable.status, 0);
  EXPECT_EQ(unwritable.out, "");
  EXPECT_NE(unwritable.err.find("/nonexistent/dir/s"), std::string::npos) << unwritable.err;
  const CliResult directory = run_cli("run -m " + model + " --load-session /tmp" + ask);
  EXPECT_NE(directory.status, 0);
  EXPECT_NE(directory.err.find("not a regular file"), std::string::npos) << directory.err;
  const CliResult missing = run_cli("run -m " + model + " --load-session /nonexistent/s" + ask);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/nonexistent/s"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace engram
