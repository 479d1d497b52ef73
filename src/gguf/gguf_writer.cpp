// GGUF v3 writer. Output is deterministic: metadata and tensors in insertion order, tensor
// data packed in that order, each tensor padded to the alignment with zeros.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <system_error>

#include "engram/error.h"
#include "engram/gguf.h"
#include "gguf/gguf_internal.h"
#include "util/errno_text.h"

namespace engram {

namespace {

uint64_t align_up(uint64_t n, uint64_t a) {
  return (n + a - 1) / a * a;
}

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void put_bytes(const uint8_t* p, size_t n) { out_.insert(out_.end(), p, p + n); }
  void pad_to(uint64_t alignment) { out_.resize(align_up(out_.size(), alignment), 0); }

 private:
  std::vector<uint8_t>& out_;
};

void put_value(ByteSink& s, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8:
      s.put(static_cast<uint8_t>(v.u64));
      return;
    case GgufType::INT8:
      s.put(static_cast<int8_t>(v.i64));
      return;
    case GgufType::UINT16:
      s.put(static_cast<uint16_t>(v.u64));
      return;
    case GgufType::INT16:
      s.put(static_cast<int16_t>(v.i64));
      return;
    case GgufType::UINT32:
      s.put(static_cast<uint32_t>(v.u64));
      return;
    case GgufType::INT32:
      s.put(static_cast<int32_t>(v.i64));
      return;
    case GgufType::UINT64:
      s.put(v.u64);
      return;
    case GgufType::INT64:
      s.put(v.i64);
      return;
    case GgufType::FLOAT32:
      s.put(static_cast<float>(v.f64));
      return;
    case GgufType::FLOAT64:
      s.put(v.f64);
      return;
    case GgufType::BOOL:
      s.put(static_cast<uint8_t>(v.u64 != 0));
      return;
    case GgufType::STRING:
      s.put_string(v.str);
      return;
    case GgufType::ARRAY:
      s.put(static_cast<uint32_t>(v.elem_type));
      s.put<uint64_t>(v.count);
      if (v.elem_type == GgufType::STRING) {
        for (const std::string& e : v.strings) s.put_string(e);
      } else {
        s.put_bytes(v.raw.data(), v.raw.size());
      }
      return;
  }
}

// Checks a value is self-consistent, so that what we write is what a reader gets back.
void check_value(const std::string& key, const GgufValue& v) {
  if (key.empty()) throw Error("GGUF writer: metadata key is empty");
  const auto t = static_cast<uint32_t>(v.type);
  if (t > static_cast<uint32_t>(GgufType::FLOAT64)) {
    throw Error(fmt::format("GGUF writer: key '{}': unknown value type {}", key, t));
  }
  if (v.type != GgufType::ARRAY) return;
  const auto e = static_cast<uint32_t>(v.elem_type);
  if (e > static_cast<uint32_t>(GgufType::FLOAT64) || v.elem_type == GgufType::ARRAY) {
    throw Error(fmt::format("GGUF writer: key '{}': array element type {} is not allowed", key, e));
  }
  if (v.elem_type == GgufType::STRING) {
    if (v.strings.size() != v.count) {
      throw Error(fmt::format("GGUF writer: key '{}': count {} but {} strings", key, v.count,
                              v.strings.size()));
    }
    return;
  }
  const size_t esize = gguf_scalar_size(v.elem_type);
  if (v.count > v.raw.size() / esize || v.raw.size() != v.count * esize) {
    throw Error(fmt::format("GGUF writer: key '{}': count {} of {} needs {} bytes, got {}", key,
                            v.count, gguf_type_name(v.elem_type), v.count * esize, v.raw.size()));
  }
}

template <typename T>
GgufValue numeric_array(GgufType elem, const std::vector<T>& values) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.count = values.size();
  v.raw.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(v.raw.data(), values.data(), v.raw.size());
  return v;
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("cannot write '{}': {}", path, errno_text(errno)));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

// Setting a key that exists replaces its value in place, so the key keeps its position.
void GgufWriter::set_value(const std::string& key, const GgufValue& v) {
  check_value(key, v);
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = v;
      return;
    }
  }
  kv_.emplace_back(key, v);
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.str = v;
  set_value(key, g);
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  GgufValue g;
  g.type = GgufType::UINT32;
  g.u64 = v;
  set_value(key, g);
}

void GgufWriter::set_i32(const std::string& key, int32_t v) {
  GgufValue g;
  g.type = GgufType::INT32;
  g.i64 = v;
  set_value(key, g);
}

void GgufWriter::set_u64(const std::string& key, uint64_t v) {
  GgufValue g;
  g.type = GgufType::UINT64;
  g.u64 = v;
  set_value(key, g);
}

void GgufWriter::set_f32(const std::string& key, float v) {
  GgufValue g;
  g.type = GgufType::FLOAT32;
  g.f64 = v;
  set_value(key, g);
}

void GgufWriter::set_bool(const std::string& key, bool v) {
  GgufValue g;
  g.type = GgufType::BOOL;
  g.u64 = v ? 1 : 0;
  set_value(key, g);
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem_type = GgufType::STRING;
  g.count = v.size();
  g.strings = v;
  set_value(key, g);
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  set_value(key, numeric_array(GgufType::FLOAT32, v));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  set_value(key, numeric_array(GgufType::INT32, v));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne,
                            TensorType type, const void* data, size_t nbytes) {
  if (name.empty()) throw Error("GGUF writer: tensor name is empty");
  for (const Tensor& t : tensors_) {
    if (t.name == name) throw Error(fmt::format("GGUF writer: duplicate tensor '{}'", name));
  }
  if (ne.empty() || ne.size() > 4) {
    throw Error(
        fmt::format("GGUF writer: tensor '{}': {} dimensions, expected 1 to 4", name, ne.size()));
  }
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0 || d > std::numeric_limits<int64_t>::max() / n) {
      throw Error(fmt::format("GGUF writer: tensor '{}': bad dimension {}", name, d));
    }
    n *= d;
  }
  const TensorTypeInfo& info = tensor_type_info(type);
  const size_t row = tensor_row_bytes(type, ne[0]);
  const uint64_t rows = static_cast<uint64_t>(n / ne[0]);
  if (row != 0 && rows > std::numeric_limits<size_t>::max() / row) {
    throw Error(fmt::format("GGUF writer: tensor '{}': too large", name));
  }
  if (row * rows != nbytes) {
    throw Error(fmt::format("GGUF writer: tensor '{}': {} elements of {} take {} bytes, got {}",
                            name, n, info.name, row * rows, nbytes));
  }
  Tensor t{name, ne, type, {}};
  const auto* p = static_cast<const uint8_t*>(data);
  t.data.assign(p, p + nbytes);
  tensors_.push_back(std::move(t));
}

namespace {

// A general.alignment key, when set, decides the layout (e.g. carried over by quantize).
uint64_t effective_alignment(const std::vector<std::pair<std::string, GgufValue>>& kv,
                             uint32_t dflt) {
  for (const auto& [k, v] : kv) {
    if (k != "general.alignment") continue;
    if (v.type != GgufType::UINT32 || v.u64 == 0 || !std::has_single_bit(v.u64)) {
      throw Error(
          fmt::format("GGUF writer: key 'general.alignment' must be a u32 power of two, got {} {}",
                      gguf_type_name(v.type), v.to_display()));
    }
    return v.u64;
  }
  return dflt;
}

// Everything before the data section, padded to the alignment. A template so it can take
// the writer's private tensor list.
template <typename Tensors>
std::vector<uint8_t> build_header(const std::vector<std::pair<std::string, GgufValue>>& kv,
                                  const Tensors& tensors, uint64_t alignment) {
  std::vector<uint8_t> out;
  ByteSink s(out);
  s.put_bytes(reinterpret_cast<const uint8_t*>("GGUF"), 4);
  s.put<uint32_t>(3);
  s.put<uint64_t>(tensors.size());
  s.put<uint64_t>(kv.size());
  for (const auto& [k, v] : kv) {
    s.put_string(k);
    s.put(static_cast<uint32_t>(v.type));
    put_value(s, v);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    s.put_string(t.name);
    s.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) s.put<uint64_t>(static_cast<uint64_t>(d));
    s.put(static_cast<uint32_t>(t.type));
    s.put<uint64_t>(offset);
    offset = align_up(offset + t.data.size(), alignment);
  }
  s.pad_to(alignment);
  return out;
}

}  // namespace

std::vector<uint8_t> GgufWriter::to_bytes() const {
  const uint64_t alignment = effective_alignment(kv_, alignment_);
  std::vector<uint8_t> out = build_header(kv_, tensors_, alignment);
  ByteSink s(out);
  for (const Tensor& t : tensors_) {
    s.put_bytes(t.data.data(), t.data.size());
    s.pad_to(alignment);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const uint64_t alignment = effective_alignment(kv_, alignment_);
  const std::vector<uint8_t> header = build_header(kv_, tensors_, alignment);
  // A unique temporary name beside the target, renamed over it only once complete, so a
  // failed write never leaves a half file under the real name.
  std::random_device rd;
  const std::string tmp = fmt::format("{}.tmp.{}.{:08x}", path, getpid(), rd());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw Error(fmt::format("cannot write '{}': {}", path, errno_text(errno)));
  try {
    // Tensor data is streamed rather than assembled, so a large model is not held twice.
    write_all(fd, header.data(), header.size(), path);
    const std::vector<uint8_t> zeros(4096, 0);
    for (const Tensor& t : tensors_) {
      write_all(fd, t.data.data(), t.data.size(), path);
      uint64_t pad = align_up(t.data.size(), alignment) - t.data.size();
      while (pad > 0) {
        const size_t n = std::min<uint64_t>(pad, zeros.size());
        write_all(fd, zeros.data(), n, path);
        pad -= n;
      }
    }
    if (::fsync(fd) != 0)
      throw Error(fmt::format("cannot write '{}': {}", path, errno_text(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write '{}': {}", path, errno_text(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write '{}': {}", path, errno_text(err)));
  }
}

}  // namespace engram
