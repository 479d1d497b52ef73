#include "util/record_io.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "engram/error.h"
#include "memory/page_file.h"
#include "util/errno_text.h"

namespace engram {
RecordWriter::RecordWriter(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) throw Error(fmt::format("cannot create '{}': {}", path, errno_text(errno)));
}

RecordWriter::~RecordWriter() {
  if (f_) std::fclose(f_);
}

void RecordWriter::bytes(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  rec_.insert(rec_.end(), b, b + n);
}

void RecordWriter::str(const std::string& s) {
  put<uint64_t>(s.size());
  bytes(s.data(), s.size());
}

void RecordWriter::end_record() {
  const uint64_t n = rec_.size();
  const uint64_t sum = PageFile::checksum(rec_.data(), rec_.size());
  if (std::fwrite(&n, sizeof n, 1, f_) != 1 || (n > 0 && std::fwrite(rec_.data(), n, 1, f_) != 1) ||
      std::fwrite(&sum, sizeof sum, 1, f_) != 1) {
    throw Error(fmt::format("cannot write '{}': {}", path_, errno_text(errno)));
  }
  rec_.clear();
}

void RecordWriter::close() {
  if (!f_) return;
  const bool ok = std::fflush(f_) == 0;
  const int err = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) throw Error(fmt::format("cannot write '{}': {}", path_, errno_text(err)));
}

RecordReader::RecordReader(const std::string& path) : path_(path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw Error(fmt::format("cannot read '{}': not a regular file", path));
  }
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) throw Error(fmt::format("cannot open '{}': {}", path, errno_text(errno)));
  if (std::fseek(f_, 0, SEEK_END) != 0) {
    throw Error(fmt::format("cannot read '{}': {}", path, errno_text(errno)));
  }
  const long size = std::ftell(f_);
  if (size < 0 || std::fseek(f_, 0, SEEK_SET) != 0) {
    throw Error(fmt::format("cannot read '{}': {}", path, errno_text(errno)));
  }
  size_ = static_cast<uint64_t>(size);
}

RecordReader::~RecordReader() {
  if (f_) std::fclose(f_);
}

void RecordReader::fail(const char* field, const std::string& why) const {
  throw Error(fmt::format("{}: record '{}', field '{}': {}", path_, what_, field, why));
}

void RecordReader::next(const std::string& what) {
  what_ = what;
  rec_.clear();
  at_ = 0;
  uint64_t n = 0;
  if (size_ - offset_ < 2 * sizeof(uint64_t)) {
    fail("length", fmt::format("the file ends at byte {} where this record should start", size_));
  }
  if (std::fread(&n, sizeof n, 1, f_) != 1) fail("length", "cannot read");
  if (n > size_ - offset_ - 2 * sizeof(uint64_t)) {
    fail("length", fmt::format("{} bytes at offset {}, past the end of the {}-byte file "
                               "(truncated or not a session)",
                               n, offset_, size_));
  }
  rec_.resize(n);
  uint64_t sum = 0;
  if ((n > 0 && std::fread(rec_.data(), n, 1, f_) != 1) ||
      std::fread(&sum, sizeof sum, 1, f_) != 1) {
    fail("payload", "cannot read");
  }
  if (PageFile::checksum(rec_.data(), rec_.size()) != sum) {
    fail("checksum", fmt::format("the {} bytes at offset {} do not match their checksum "
                                 "(the file was changed or damaged)",
                                 n, offset_ + sizeof(uint64_t)));
  }
  offset_ += n + 2 * sizeof(uint64_t);
}

void RecordReader::bytes(void* out, size_t n, const char* field) {
  if (n > rec_.size() - at_) {
    fail(field, fmt::format("needs {} bytes, {} left in the record", n, rec_.size() - at_));
  }
  if (n > 0) std::memcpy(out, rec_.data() + at_, n);
  at_ += n;
}

std::string RecordReader::str(const char* field, size_t max_len) {
  const uint64_t n = count(field, max_len, 1);
  std::string s(n, '\0');
  bytes(s.data(), n, field);
  return s;
}

uint64_t RecordReader::count(const char* field, uint64_t max_count, size_t elem_bytes) {
  const uint64_t n = get<uint64_t>(field);
  if (n > max_count) fail(field, fmt::format("count {} is more than the {} allowed", n, max_count));
  if (elem_bytes > 0 && n > (rec_.size() - at_) / elem_bytes) {
    fail(field, fmt::format("count {} of {}-byte elements does not fit the {} bytes left", n,
                            elem_bytes, rec_.size() - at_));
  }
  return n;
}

void RecordReader::done() {
  if (at_ != rec_.size()) {
    fail("end",
         fmt::format("{} bytes left unread: the record has the wrong shape", rec_.size() - at_));
  }
}

}  // namespace engram
