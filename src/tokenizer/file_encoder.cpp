#include "tokenizer/file_encoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engram/error.h"
#include "engram/tokenizer.h"
#include "util/trailing_space.h"

namespace engram {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

FileEncoder::FileEncoder(const Tokenizer& tok, const std::string& path, bool add_bos,
                         size_t piece_bytes, bool trim_end)
    : tok_(tok),
      path_(path),
      in_(path, std::ios::binary),
      add_bos_(add_bos),
      piece_(std::max<size_t>(piece_bytes, 1)),
      trim_end_(trim_end) {
  if (!in_) throw Error(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  total_ = ec ? 0 : static_cast<uint64_t>(size);
}

bool FileEncoder::read_more(size_t n) {
  const size_t at = pending_.size();
  pending_.resize(at + n);
  in_.read(pending_.data() + at, static_cast<std::streamsize>(n));
  const size_t got = static_cast<size_t>(in_.gcount());
  pending_.resize(at + got);
  if (in_.bad()) throw Error(fmt::format("error reading '{}'", path_));
  if (got < n || in_.peek() == std::char_traits<char>::eof()) eof_ = true;
  return !eof_;
}

size_t FileEncoder::find_cut() const {
  if (pending_.size() < 3) return std::string::npos;
  for (size_t i = pending_.size() - 2; i >= 1; --i) {
    if (pending_[i] == ' ' && !is_space(pending_[i - 1]) && !is_space(pending_[i + 1])) return i;
  }
  return std::string::npos;
}

bool FileEncoder::next(std::vector<int32_t>& ids) {
  ids.clear();
  if (finished_) return false;
  size_t want = piece_;
  size_t cut = std::string::npos;
  bool hard = false;
  for (;;) {
    if (!eof_ && pending_.size() < want) {
      read_more(want - pending_.size());
      continue;
    }
    if (eof_) break;
    cut = find_cut();
    if (cut != std::string::npos) break;
    if (pending_.size() >= 16 * piece_) {
      // No word boundary in 16 pieces: cut before a UTF-8 lead byte.
      cut = pending_.size() - 1;
      while (cut > 0 && (static_cast<unsigned char>(pending_[cut]) & 0xC0) == 0x80) --cut;
      if (cut == 0) cut = pending_.size();
      hard = true;
      break;
    }
    want += piece_;
  }
  const bool bos = first_ && add_bos_;
  first_ = false;
  if (eof_) {
    done_bytes_ += pending_.size();
    // Trailing whitespace is never cut off into an earlier piece (cuts fall between words).
    if (trim_end_) pending_ = without_trailing_space(std::move(pending_));
    ids = tok_.encode(pending_, bos, false);
    pending_.clear();
    pending_.shrink_to_fit();
    finished_ = true;
    return true;
  }
  ids = tok_.encode(std::string_view(pending_).substr(0, cut), bos, false);
  // The space at a cut is the next piece's space prefix when the encoder adds one.
  const size_t drop = cut + (!hard && tok_.add_space_prefix() ? 1 : 0);
  pending_.erase(0, drop);
  done_bytes_ += drop;
  return true;
}

}  // namespace engram
