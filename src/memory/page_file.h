// An append-only file of fixed-size pages, read back through a small LRU cache: where a memory
// policy's units keep their K/V once they have left the local window, so that memory can grow
// past RAM. Every page carries a checksum taken when it was written and checked when it is read
// back, so a file changed or damaged underneath a running stream is an error, not wrong keys.
//
// Not thread-safe: the model reads pages from its main thread while it gathers a plan's cells.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace engram {

class PageFile {
 public:
  // Creates (or truncates) `path`. At most `cache_pages` (>= 1) pages are held in RAM.
  PageFile(const std::string& path, size_t page_bytes, size_t cache_pages);
  ~PageFile();
  PageFile(const PageFile&) = delete;
  PageFile& operator=(const PageFile&) = delete;

  // A new file in `dir`, removed from the directory at once: its space is freed when the
  // process ends, however it ends.
  static std::unique_ptr<PageFile> temporary(const std::string& dir, size_t page_bytes,
                                             size_t cache_pages);

  const std::string& path() const { return path_; }
  size_t page_bytes() const { return page_bytes_; }
  int64_t pages() const { return static_cast<int64_t>(sums_.size()); }
  // Writes page number pages() (page_bytes() bytes).
  void append(const void* data);
  // Page i (< pages()), from the cache or read back and checked. The pointer stays valid until
  // the next call of page() or clear(). With keep false a page not in the cache is read into a
  // one-page buffer instead of the cache (a pass over every page, such as saving a session,
  // then does not evict what retrieval uses, nor grow the cache).
  const uint8_t* page(int64_t i, bool keep = true);
  // Forgets every page; the file is truncated.
  void clear();

  uint64_t file_bytes() const { return uint64_t(pages()) * page_bytes_; }
  uint64_t cache_bytes() const { return uint64_t(cache_.size()) * page_bytes_; }
  int64_t reads() const { return reads_; }  // pages read back from the file so far

  // The checksum kept for each page (64-bit, over its bytes).
  static uint64_t checksum(const void* data, size_t n);

 private:
  struct Cached {
    int64_t page;
    std::vector<uint8_t> bytes;
  };
  // Reads page i into out (page_bytes()) and checks it against its checksum.
  void read_checked(int64_t i, uint8_t* out);
  std::string path_;
  int fd_ = -1;
  size_t page_bytes_;
  size_t cache_pages_;
  std::vector<uint64_t> sums_;  // [page]
  std::list<Cached> cache_;     // most recently used first
  std::unordered_map<int64_t, std::list<Cached>::iterator> where_;
  Cached passing_{-1, {}};  // the last page read with keep false
  int64_t reads_ = 0;
};

}  // namespace engram
