// A file of checksummed records, for state that must come back exactly (saved sessions).
//
// Each record is a u64 payload length, the payload, and a u64 checksum of the payload
// (PageFile::checksum). The writer builds one record in memory and writes it whole; the reader
// reads one record (refusing a length past the end of the file before allocating it), checks
// its checksum, and then hands out the payload's fields with every read bounds-checked. Every
// error names the file, the record and the field.
//
// Numbers are stored little-endian as the machine holds them (engram targets x86-64).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

namespace engram {

class RecordWriter {
 public:
  // Creates or truncates `path`.
  explicit RecordWriter(const std::string& path);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  template <typename T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes(&v, sizeof v);
  }
  void bytes(const void* p, size_t n);
  void str(const std::string& s);
  template <typename T>
  void vec(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(v.size());
    bytes(v.data(), v.size() * sizeof(T));
  }
  // Writes the record built so far and starts the next one.
  void end_record();
  // Flushes and closes; throws if anything failed to reach the file.
  void close();

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  std::vector<uint8_t> rec_;
};

class RecordReader {
 public:
  explicit RecordReader(const std::string& path);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // Reads the next record (`what` names it in errors); throws at the end of the file or on a
  // bad length or checksum.
  void next(const std::string& what);
  // True when the last record has been read.
  bool at_end() const { return offset_ >= size_; }

  template <typename T>
  T get(const char* field) {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    bytes(&v, sizeof v, field);
    return v;
  }
  void bytes(void* out, size_t n, const char* field);
  std::string str(const char* field, size_t max_len);
  // A vector of at most max_count elements.
  template <typename T>
  std::vector<T> vec(const char* field, uint64_t max_count) {
    static_assert(std::is_trivially_copyable_v<T>);
    const uint64_t n = count(field, max_count, sizeof(T));
    std::vector<T> v(n);
    bytes(v.data(), n * sizeof(T), field);
    return v;
  }
  // A count of at most max_count elements of elem_bytes each that fit in what is left of the
  // record.
  uint64_t count(const char* field, uint64_t max_count, size_t elem_bytes);
  // The payload must have been read to its end (catches a record of the wrong shape).
  void done();

  // "session.bin: record 'cells', field 'pos': ..." -- for callers validating values.
  [[noreturn]] void fail(const char* field, const std::string& why) const;

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t size_ = 0;    // file bytes
  uint64_t offset_ = 0;  // file offset of the next record
  std::string what_;     // the record being read
  std::vector<uint8_t> rec_;
  size_t at_ = 0;  // read position in rec_
};

}  // namespace engram
