#include "memory/page_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <memory>
#include <system_error>

#include "engram/error.h"
#include "util/errno_text.h"

namespace engram {
namespace {

// Writes or reads all n bytes at `offset`, retrying short transfers; false with errno set on
// failure (a read that meets the end of the file fails with EIO).
template <typename Byte, typename Fn>
bool transfer_all(Fn fn, Byte* p, size_t n, off_t offset) {
  while (n > 0) {
    const ssize_t got = fn(p, n, offset);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (got == 0) {
      errno = EIO;
      return false;
    }
    p += got;
    n -= size_t(got);
    offset += got;
  }
  return true;
}

}  // namespace

PageFile::PageFile(const std::string& path, size_t page_bytes, size_t cache_pages)
    : path_(path), page_bytes_(page_bytes), cache_pages_(cache_pages) {
  if (page_bytes_ == 0 || cache_pages_ == 0) {
    throw Error(fmt::format("page file '{}': page size {} and cache of {} pages must be > 0", path,
                            page_bytes_, cache_pages_));
  }
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) throw Error(fmt::format("cannot create '{}': {}", path, errno_text(errno)));
}

PageFile::~PageFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<PageFile> PageFile::temporary(const std::string& dir, size_t page_bytes,
                                              size_t cache_pages) {
  std::string name = (dir.empty() ? std::string(".") : dir) + "/engram-kv-XXXXXX";
  const int fd = ::mkstemp(name.data());
  if (fd < 0) {
    throw Error(fmt::format("cannot create a memory file in '{}': {}", dir, errno_text(errno)));
  }
  ::close(fd);
  auto f = std::make_unique<PageFile>(name, page_bytes, cache_pages);
  ::unlink(name.c_str());
  return f;
}

uint64_t PageFile::checksum(const void* data, size_t n) {
  // 64-bit words folded in with a multiply and a rotation (FNV-style constants); the tail bytes
  // and the length go in last. Catches any changed byte with overwhelming probability; it is
  // not meant to resist someone forging pages.
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h = (h << 29) | (h >> 35);
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return (h ^ n) * 0x9e3779b97f4a7c15ull;
}

void PageFile::append(const void* data) {
  const off_t at = static_cast<off_t>(file_bytes());
  const auto* p = static_cast<const uint8_t*>(data);
  if (!transfer_all([&](const uint8_t* b, size_t n, off_t o) { return ::pwrite(fd_, b, n, o); }, p,
                    page_bytes_, at)) {
    throw Error(fmt::format("memory file '{}': cannot write page {}: {}", path_, pages(),
                            errno_text(errno)));
  }
  sums_.push_back(checksum(data, page_bytes_));
}

const uint8_t* PageFile::page(int64_t i, bool keep) {
  if (i < 0 || i >= pages()) {
    throw Error(fmt::format("memory file '{}': page {} asked, {} written", path_, i, pages()));
  }
  if (auto it = where_.find(i); it != where_.end()) {
    if (keep) cache_.splice(cache_.begin(), cache_, it->second);  // now the most recent
    return it->second->bytes.data();
  }
  if (!keep) {
    if (passing_.page != i) {
      passing_.page = -1;
      passing_.bytes.resize(page_bytes_);
      read_checked(i, passing_.bytes.data());
      passing_.page = i;
    }
    return passing_.bytes.data();
  }
  // Reuse the least recently used buffer once the cache is full.
  if (cache_.size() >= cache_pages_) {
    where_.erase(cache_.back().page);
    cache_.splice(cache_.begin(), cache_, std::prev(cache_.end()));
  } else {
    cache_.push_front({i, std::vector<uint8_t>(page_bytes_)});
  }
  Cached& c = cache_.front();
  c.page = -1;  // not valid until read and checked
  try {
    read_checked(i, c.bytes.data());
  } catch (...) {
    cache_.pop_front();
    throw;
  }
  c.page = i;
  where_[i] = cache_.begin();
  return c.bytes.data();
}

void PageFile::read_checked(int64_t i, uint8_t* out) {
  const off_t at = static_cast<off_t>(uint64_t(i) * page_bytes_);
  if (!transfer_all([&](uint8_t* b, size_t n, off_t o) { return ::pread(fd_, b, n, o); }, out,
                    page_bytes_, at)) {
    throw Error(
        fmt::format("memory file '{}': cannot read page {}: {}", path_, i, errno_text(errno)));
  }
  ++reads_;
  if (checksum(out, page_bytes_) != sums_[size_t(i)]) {
    throw Error(fmt::format(
        "memory file '{}': page {} (bytes {}..{}) does not match its checksum: the file was "
        "changed or damaged while the stream ran",
        path_, i, uint64_t(i) * page_bytes_, uint64_t(i + 1) * page_bytes_));
  }
}

void PageFile::clear() {
  sums_.clear();
  passing_ = {-1, {}};
  cache_.clear();
  where_.clear();
  if (::ftruncate(fd_, 0) != 0) {
    throw Error(fmt::format("memory file '{}': cannot truncate: {}", path_, errno_text(errno)));
  }
}

}  // namespace engram
