// Encoding a file piece by piece (streaming prefill of long files) gives the ids of encoding the
// whole text at once, for every piece size, with the question after the file.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "engram/gguf.h"
#include "engram/model.h"
#include "engram/tokenizer.h"
#include "tokenizer/file_encoder.h"

namespace engram {
namespace {

const std::string kRoot = std::string(ENGRAM_SOURCE_DIR) + "/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

struct Encoded {
  std::vector<int32_t> ids;
  int pieces = 0;
  uint64_t done = 0, total = 0;
};

Encoded encode_in_pieces(const Tokenizer& tok, const std::string& path, size_t piece,
                         bool trim_end = false) {
  FileEncoder enc(tok, path, tok.add_bos(), piece, trim_end);
  Encoded e;
  std::vector<int32_t> ids;
  while (enc.next(ids)) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    ++e.pieces;
  }
  e.done = enc.bytes_done();
  e.total = enc.bytes_total();
  return e;
}

TEST(FileEncoder, PiecesTogetherEqualTheWholeText) {
  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  // Brown text with paragraphs, double spaces and punctuation.
  const std::string text = slurp(kRoot + "data/heldout_sample.txt") + "  tail  end\n";
  ASSERT_GT(text.size(), 50000u);
  const std::string path = write_temp("file_encoder_brown.txt", text);
  const auto whole = tok->encode(text, tok->add_bos(), false);
  for (size_t piece : {size_t(7), size_t(64), size_t(1000), size_t(1) << 20}) {
    const Encoded e = encode_in_pieces(*tok, path, piece);
    EXPECT_EQ(e.ids, whole) << "piece " << piece;
    EXPECT_EQ(e.done, text.size()) << piece;
    EXPECT_EQ(e.total, text.size()) << piece;
    if (piece < 1000) {
      EXPECT_GT(e.pieces, 40) << piece;  // it really was cut
    }
  }
  std::remove(path.c_str());
}

// trim_end: the ids of the text without its trailing whitespace, whatever the piece size; all
// bytes still count as read.
TEST(FileEncoder, TrimEndLeavesOutTrailingWhitespace) {
  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  const std::string body = slurp(kRoot + "data/heldout_sample.txt").substr(0, 5000) + " the end.";
  const std::string path = write_temp("file_encoder_trim.txt", body + " \n\n\t \n");
  const auto want = tok->encode(body, tok->add_bos(), false);
  for (size_t piece : {size_t(7), size_t(1000), size_t(1) << 20}) {
    const Encoded e = encode_in_pieces(*tok, path, piece, true);
    EXPECT_EQ(e.ids, want) << "piece " << piece;
    EXPECT_EQ(e.done, body.size() + 6) << piece;
  }
  EXPECT_NE(encode_in_pieces(*tok, path, 1000, false).ids, want);  // kept without it
  std::remove(path.c_str());
}

TEST(FileEncoder, EmptyFileGivesOnePieceWithBosAlone) {
  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  const std::string path = write_temp("file_encoder_empty.txt", "");
  const Encoded e = encode_in_pieces(*tok, path, 16);
  ASSERT_TRUE(tok->add_bos());
  EXPECT_EQ(e.ids, std::vector<int32_t>{tok->bos()});
  EXPECT_EQ(e.pieces, 1);
  std::remove(path.c_str());
}

TEST(FileEncoder, TextWithoutSpacesIsStillCutAndFullyRead) {
  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  std::string text;
  for (int i = 0; i < 400; ++i) text += "abc\xC3\xA9";  // no space anywhere; 2-byte characters
  const std::string path = write_temp("file_encoder_nospace.txt", text);
  const Encoded e = encode_in_pieces(*tok, path, 8);  // cut after 16 x 8 bytes
  EXPECT_GT(e.pieces, 10);
  EXPECT_EQ(e.done, text.size());
  // Cuts fall on character boundaries: no piece decodes to a replacement character.
  EXPECT_EQ(tok->decode(e.ids).find("\xEF\xBF\xBD"), std::string::npos);
  std::remove(path.c_str());
}

TEST(FileEncoder, MissingFileIsRefusedNamingIt) {
  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  try {
    FileEncoder enc(*tok, "/nonexistent/book.txt", true);
    ADD_FAILURE() << "opened a missing file";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/book.txt"), std::string::npos);
  }
}

}  // namespace
}  // namespace engram
