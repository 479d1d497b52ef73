// Encoding a text file of any length piece by piece, with only about one piece in RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace engram {

class Tokenizer;

// Reads `path` in pieces of about `piece_bytes`, each ending at a space between two words, and
// encodes them one at a time, BOS before the first when add_bos. The ids of all pieces are
// those of encoding the whole file at once: SentencePiece pieces never span a space, and the space
// at a cut becomes the next piece's space prefix (llama vocabularies) or stays in front of its
// word (byte-level BPE, whose pre-tokenizers attach a space to the word after it). A run of
// over 16 pieces' worth of bytes without such a space is cut at a character boundary instead.
// With trim_end, whitespace at the end of the file is left out (for text that something else
// follows directly, such as a question).
class FileEncoder {
 public:
  FileEncoder(const Tokenizer& tok, const std::string& path, bool add_bos,
              size_t piece_bytes = size_t(1) << 20, bool trim_end = false);
  // Ids of the next piece (may be empty for a piece of nothing but spaces); false once the
  // whole file has been returned.
  bool next(std::vector<int32_t>& ids);
  uint64_t bytes_total() const { return total_; }
  uint64_t bytes_done() const { return done_bytes_; }  // file bytes returned so far

 private:
  bool read_more(size_t n);  // appends up to n bytes to pending_; false at end of file
  size_t find_cut() const;   // last space between two non-spaces in pending_, or npos

  const Tokenizer& tok_;
  std::string path_;
  std::ifstream in_;
  bool add_bos_;
  size_t piece_;
  bool trim_end_;
  uint64_t total_ = 0;
  uint64_t done_bytes_ = 0;
  std::string pending_;
  bool eof_ = false;
  bool first_ = true;
  bool finished_ = false;
};

}  // namespace engram
