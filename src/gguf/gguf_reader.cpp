// GGUF reader. Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count,
// kv_count x (string key, u32 type, value), tensor_count x (string name, u32 n_dims,
// n_dims x u64 ne, u32 type, u64 offset), padding to general.alignment, tensor data.
// Strings are u64 length + bytes; arrays are u32 element type + u64 count + elements.
//
// Nothing read from the file is trusted before it is checked against the bytes that remain,
// so a hostile count can neither overrun the buffer nor make us allocate memory the file
// could not describe.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <system_error>

#include "engram/error.h"
#include "engram/gguf.h"
#include "gguf/gguf_internal.h"
#include "util/errno_text.h"

namespace engram {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader maps little-endian data directly");

namespace {

constexpr uint64_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr int kMaxStringPreview = 60;

// Smallest encodings, used to reject counts the remaining bytes cannot hold before any
// allocation: a kv is a non-empty key (8 + 1), a type (4) and at least one value byte;
// a tensor info is a non-empty name (8 + 1), n_dims (4), one dim (8), type (4), offset (8).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
// Containers are reserved up to this many entries and grow past it only as entries are
// actually read: a parsed entry is several times larger than its smallest encoding, so
// reserving a bounded-but-hostile count in full could still ask for many times the file size.
constexpr uint64_t kMaxReserve = 1 << 16;

// Makes a value safe to show on one line: control bytes escaped, long text cut.
std::string printable(std::string_view s, size_t max_len) {
  std::string out;
  size_t i = 0;
  for (; i < s.size() && out.size() < max_len; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (i < s.size()) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

// What is being read, for error messages; the element index is formatted only on failure,
// so reading a 150k-token vocabulary builds no per-element strings.
struct Field {
  Field(std::string_view w) : what(w) {}    // NOLINT: implicit on purpose
  Field(const std::string& w) : what(w) {}  // NOLINT
  Field(const char* w) : what(w) {}         // NOLINT
  Field(std::string_view w, uint64_t i) : what(w), index(i) {}
  std::string str() const {
    return index == UINT64_MAX ? std::string(what) : fmt::format("{} element {}", what, index);
  }
  std::string_view what;
  uint64_t index = UINT64_MAX;
};

class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  uint64_t size() const { return bytes_.size(); }

  [[noreturn]] void fail(uint64_t at, const std::string& msg) const {
    throw Error(fmt::format("{}: {} (at byte {})", name_, msg, at));
  }

  void need(uint64_t n, const Field& what) const {
    if (n > remaining()) {
      fail(pos_,
           fmt::format("truncated file: {} needs {} bytes but only {} remain (file is {} bytes)",
                       what.str(), n, remaining(), size()));
    }
  }

  template <typename T>
  T read(const Field& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const Field& what) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining()) {
      fail(at, fmt::format("{}: string length {} exceeds the {} bytes left in the file ({} bytes)",
                           what.str(), len, remaining(), size()));
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  const uint8_t* take(uint64_t n) {
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

void read_value(Cursor& c, GgufType type, const std::string& field, GgufValue& v) {
  v.type = type;
  switch (type) {
    case GgufType::UINT8:
      v.u64 = c.read<uint8_t>(field);
      return;
    case GgufType::INT8:
      v.i64 = c.read<int8_t>(field);
      return;
    case GgufType::UINT16:
      v.u64 = c.read<uint16_t>(field);
      return;
    case GgufType::INT16:
      v.i64 = c.read<int16_t>(field);
      return;
    case GgufType::UINT32:
      v.u64 = c.read<uint32_t>(field);
      return;
    case GgufType::INT32:
      v.i64 = c.read<int32_t>(field);
      return;
    case GgufType::UINT64:
      v.u64 = c.read<uint64_t>(field);
      return;
    case GgufType::INT64:
      v.i64 = c.read<int64_t>(field);
      return;
    case GgufType::FLOAT32:
      v.f64 = c.read<float>(field);
      return;
    case GgufType::FLOAT64:
      v.f64 = c.read<double>(field);
      return;
    case GgufType::BOOL: {
      const uint64_t at = c.pos();
      const uint8_t b = c.read<uint8_t>(field);
      if (b > 1) c.fail(at, fmt::format("{}: bool value {} is neither 0 nor 1", field, b));
      v.u64 = b;
      return;
    }
    case GgufType::STRING:
      v.str = c.read_string(field);
      return;
    case GgufType::ARRAY: {
      const uint64_t type_at = c.pos();
      const uint32_t elem = c.read<uint32_t>(field);
      if (elem > static_cast<uint32_t>(GgufType::FLOAT64)) {
        c.fail(type_at, fmt::format("{}: unknown array element type {}", field, elem));
      }
      v.elem_type = static_cast<GgufType>(elem);
      if (v.elem_type == GgufType::ARRAY) {
        c.fail(type_at, fmt::format("{}: nested arrays are not supported", field));
      }
      const uint64_t count_at = c.pos();
      v.count = c.read<uint64_t>(field);
      // Every element takes at least min_bytes, so the count is bounded by what remains.
      const uint64_t min_bytes =
          v.elem_type == GgufType::STRING ? 8 : gguf_scalar_size(v.elem_type);
      if (v.count > c.remaining() / min_bytes) {
        c.fail(count_at,
               fmt::format("{}: array of {} x {} does not fit in the {} bytes left in "
                           "the file ({} bytes)",
                           field, v.count, gguf_type_name(v.elem_type), c.remaining(), c.size()));
      }
      if (v.elem_type == GgufType::STRING) {
        v.strings.reserve(std::min<uint64_t>(v.count, kMaxReserve));
        for (uint64_t i = 0; i < v.count; ++i) {
          v.strings.push_back(c.read_string(Field(field, i)));
        }
      } else {
        const uint64_t n = v.count * min_bytes;
        const uint64_t at = c.pos();
        const uint8_t* p = c.take(n);
        v.raw.assign(p, p + n);
        if (v.elem_type == GgufType::BOOL) {
          for (uint64_t i = 0; i < n; ++i) {
            if (p[i] > 1) {
              c.fail(at + i, fmt::format("{} element {}: bool value {} is neither 0 nor 1", field,
                                         i, p[i]));
            }
          }
        }
      }
      return;
    }
  }
  c.fail(c.pos(), fmt::format("{}: unknown value type {}", field, static_cast<uint32_t>(type)));
}

std::string describe_magic(const uint8_t* m) {
  std::string ascii;
  for (int i = 0; i < 4; ++i) {
    ascii += (m[i] >= 0x20 && m[i] < 0x7f) ? static_cast<char>(m[i]) : '.';
  }
  return fmt::format("'{}' (bytes {:02x} {:02x} {:02x} {:02x})", ascii, m[0], m[1], m[2], m[3]);
}

}  // namespace

size_t gguf_scalar_size(GgufType type) {
  switch (type) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64:
      return 8;
    case GgufType::STRING:
    case GgufType::ARRAY:
      return 0;
  }
  return 0;
}

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::UINT8:
      return "u8";
    case GgufType::INT8:
      return "i8";
    case GgufType::UINT16:
      return "u16";
    case GgufType::INT16:
      return "i16";
    case GgufType::UINT32:
      return "u32";
    case GgufType::INT32:
      return "i32";
    case GgufType::FLOAT32:
      return "f32";
    case GgufType::BOOL:
      return "bool";
    case GgufType::STRING:
      return "string";
    case GgufType::ARRAY:
      return "array";
    case GgufType::UINT64:
      return "u64";
    case GgufType::INT64:
      return "i64";
    case GgufType::FLOAT64:
      return "f64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::UINT16:
    case GgufType::INT16:
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::UINT64:
    case GgufType::INT64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufType::FLOAT32 || type == GgufType::FLOAT64;
}

namespace {

bool is_signed(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 ||
         t == GgufType::INT64;
}

// One numeric array element as text, read from the raw little-endian bytes.
std::string element_text(GgufType t, const uint8_t* p) {
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (t) {
    case GgufType::UINT8:
      return fmt::format("{}", load(uint8_t{}));
    case GgufType::INT8:
      return fmt::format("{}", load(int8_t{}));
    case GgufType::UINT16:
      return fmt::format("{}", load(uint16_t{}));
    case GgufType::INT16:
      return fmt::format("{}", load(int16_t{}));
    case GgufType::UINT32:
      return fmt::format("{}", load(uint32_t{}));
    case GgufType::INT32:
      return fmt::format("{}", load(int32_t{}));
    case GgufType::UINT64:
      return fmt::format("{}", load(uint64_t{}));
    case GgufType::INT64:
      return fmt::format("{}", load(int64_t{}));
    case GgufType::FLOAT32:
      return fmt::format("{}", load(float{}));
    case GgufType::FLOAT64:
      return fmt::format("{}", load(double{}));
    case GgufType::BOOL:
      return *p ? "true" : "false";
    default:
      return "?";
  }
}

}  // namespace

std::string GgufValue::to_display() const {
  switch (type) {
    case GgufType::STRING:
      return printable(str, kMaxStringPreview);
    case GgufType::BOOL:
      return u64 ? "true" : "false";
    case GgufType::FLOAT32:
      return fmt::format("{}", static_cast<float>(f64));
    case GgufType::FLOAT64:
      return fmt::format("{}", f64);
    case GgufType::ARRAY: {
      std::string out = fmt::format("[{} x {}]", count, gguf_type_name(elem_type));
      // Short arrays are shown whole; long ones by their first few elements.
      const uint64_t shown = count <= 8 ? count : 5;
      const size_t esize = gguf_scalar_size(elem_type);
      for (uint64_t i = 0; i < shown; ++i) {
        out += i == 0 ? " " : ", ";
        if (elem_type == GgufType::STRING) {
          out += i < strings.size() ? printable(strings[i], 24) : "?";
        } else if ((i + 1) * esize <= raw.size()) {
          out += element_text(elem_type, raw.data() + i * esize);
        }
      }
      if (shown < count) out += ", ...";
      return out;
    }
    default:
      return is_signed(type) ? fmt::format("{}", i64) : fmt::format("{}", u64);
  }
}

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("cannot open '{}': {}", path, errno_text(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(fmt::format("cannot stat '{}': {}", path, errno_text(err)));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("cannot open '{}': {}", path, errno_text(EISDIR)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("cannot open '{}': not a regular file", path));
  }
  if (st.st_size == 0) {
    ::close(fd);
    throw Error(fmt::format("{}: file is empty (0 bytes), not a GGUF file", path));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) throw Error(fmt::format("cannot map '{}': {}", path, errno_text(err)));

  std::unique_ptr<GgufFile> f(new GgufFile());
  f->map_ = map;  // owned from here on: the destructor unmaps even if parsing throws
  f->map_size_ = size;
  f->path_ = path;
  f->bytes_ = std::span<const uint8_t>(static_cast<const uint8_t*>(map), size);
  f->parse_all();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(name);
  f->bytes_ = bytes;
  f->parse_all();
  return f;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

void GgufFile::parse_all() {
  Cursor c(bytes_, path_);

  // Header.
  if (bytes_.size() < 4) {
    c.fail(0,
           fmt::format("truncated file: {} bytes is too small for the GGUF magic", bytes_.size()));
  }
  if (std::memcmp(bytes_.data(), "GGUF", 4) != 0) {
    c.fail(0, fmt::format("not a GGUF file: magic is {}, expected 'GGUF'",
                          describe_magic(bytes_.data())));
  }
  c.take(4);
  const uint64_t version_at = c.pos();
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    if (version_ == 0x02000000u || version_ == 0x03000000u) {
      c.fail(version_at, "big-endian GGUF files are not supported");
    }
    if (version_ == 1) {
      c.fail(version_at, "GGUF version 1 is not supported (only versions 2 and 3 are)");
    }
    c.fail(version_at, fmt::format("unsupported GGUF version {} (expected 2 or 3)", version_));
  }
  const uint64_t tensor_count_at = c.pos();
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t kv_count_at = c.pos();
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > c.remaining() / kMinKvBytes) {
    c.fail(kv_count_at, fmt::format("metadata count {} cannot fit in the {} bytes left in the file",
                                    n_kv, c.remaining()));
  }
  if (n_tensors > c.remaining() / kMinTensorInfoBytes ||
      n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > c.remaining()) {
    c.fail(tensor_count_at,
           fmt::format("tensor count {} cannot fit in the {} bytes left in the file", n_tensors,
                       c.remaining()));
  }

  // Metadata.
  kv_.reserve(std::min<uint64_t>(n_kv, kMaxReserve));
  std::set<std::string, std::less<>> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t key_at = c.pos();
    std::string key = c.read_string(fmt::format("metadata key #{}", i));
    if (key.empty()) c.fail(key_at, fmt::format("metadata key #{} is empty", i));
    if (!keys.insert(key).second) {
      c.fail(key_at, fmt::format("duplicate metadata key '{}'", printable(key, 200)));
    }
    const std::string field = fmt::format("key '{}'", printable(key, 200));
    const uint64_t type_at = c.pos();
    const uint32_t type = c.read<uint32_t>(field + " value type");
    if (type > static_cast<uint32_t>(GgufType::FLOAT64)) {
      c.fail(type_at, fmt::format("{}: unknown value type {}", field, type));
    }
    GgufValue v;
    read_value(c, static_cast<GgufType>(type), field, v);
    kv_.emplace_back(std::move(key), std::move(v));
  }

  alignment_ = 32;
  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::UINT32) {
      c.fail(c.pos(), fmt::format("key 'general.alignment' has type {}, expected u32",
                                  gguf_type_name(a->type)));
    }
    if (a->u64 == 0 || !std::has_single_bit(a->u64)) {
      c.fail(c.pos(), fmt::format("key 'general.alignment': {} is not a power of two", a->u64));
    }
    alignment_ = a->u64;
  }

  // Tensor infos.
  tensors_.reserve(std::min<uint64_t>(n_tensors, kMaxReserve));
  std::vector<uint64_t> offset_field_at;  // where each tensor's offset is, for error messages
  offset_field_at.reserve(std::min<uint64_t>(n_tensors, kMaxReserve));
  std::set<std::string, std::less<>> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t name_at = c.pos();
    GgufTensorInfo t;
    t.name = c.read_string(fmt::format("tensor #{} name", i));
    if (t.name.empty()) c.fail(name_at, fmt::format("tensor #{} has an empty name", i));
    const std::string field = fmt::format("tensor '{}'", printable(t.name, 200));
    if (!names.insert(t.name).second) c.fail(name_at, "duplicate " + field);

    const uint64_t ndims_at = c.pos();
    const uint32_t n_dims = c.read<uint32_t>(field + " dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) {
      c.fail(ndims_at, fmt::format("{}: {} dimensions, expected 1 to {}", field, n_dims, kMaxDims));
    }
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = c.pos();
      const uint64_t ne = c.read<uint64_t>(field + " dimensions");
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c.fail(dim_at, fmt::format("{}: dimension {} is {}, expected 1 to 2^63-1", field, d, ne));
      }
      if (static_cast<int64_t>(ne) > std::numeric_limits<int64_t>::max() / n_elements) {
        c.fail(dim_at,
               fmt::format("{}: element count overflows at dimension {} ({})", field, d, ne));
      }
      n_elements *= static_cast<int64_t>(ne);
      t.ne.push_back(static_cast<int64_t>(ne));
    }

    const uint64_t type_at = c.pos();
    t.type = c.read<uint32_t>(field + " type");
    const TensorTypeInfo* info = tensor_type_info(t.type);
    if (info == nullptr)
      c.fail(type_at, fmt::format("{}: unknown tensor type id {}", field, t.type));
    if (t.ne[0] % info->block_size != 0) {
      c.fail(type_at, fmt::format("{}: row length {} is not a multiple of the {} block size {}",
                                  field, t.ne[0], info->name, info->block_size));
    }
    const uint64_t blocks = static_cast<uint64_t>(n_elements / info->block_size);
    if (blocks > std::numeric_limits<uint64_t>::max() / info->block_bytes) {
      c.fail(type_at, fmt::format("{}: data size overflows ({} elements of {})", field, n_elements,
                                  info->name));
    }
    t.nbytes = blocks * info->block_bytes;

    const uint64_t offset_at = c.pos();
    t.offset = c.read<uint64_t>(field + " data offset");
    if (t.offset % alignment_ != 0) {
      c.fail(offset_at, fmt::format("{}: data offset {} is not a multiple of the alignment {}",
                                    field, t.offset, alignment_));
    }
    tensors_.push_back(std::move(t));
    offset_field_at.push_back(offset_at);
  }

  // Data section: starts at the end of the header, rounded up to the alignment. Padding after
  // the last tensor is not required (llama.cpp does not require it either).
  const uint64_t header_end = c.pos();
  data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t size = bytes_.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const GgufTensorInfo& t = tensors_[i];
    const uint64_t avail = size > data_offset_ ? size - data_offset_ : 0;
    if (t.offset > avail || t.nbytes > avail - t.offset) {
      // Absolute positions, saturated so that an absurd offset still prints sensibly.
      const uint64_t begin = data_offset_ + std::min(t.offset, UINT64_MAX - data_offset_);
      const uint64_t end = begin + std::min(t.nbytes, UINT64_MAX - begin);
      c.fail(offset_field_at[i],
             fmt::format("tensor '{}': data [{}, {}) extends past end of file ({} bytes)",
                         printable(t.name, 200), begin, end, size));
    }
  }
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = tensors_[order[k - 1]];
    const GgufTensorInfo& cur = tensors_[order[k]];
    if (cur.offset < prev.offset + prev.nbytes) {
      c.fail(offset_field_at[order[k]],
             fmt::format("tensor '{}': data [{}, {}) overlaps tensor '{}' at [{}, {})",
                         printable(cur.name, 200), data_offset_ + cur.offset,
                         data_offset_ + cur.offset + cur.nbytes, printable(prev.name, 200),
                         data_offset_ + prev.offset, data_offset_ + prev.offset + prev.nbytes));
    }
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return bytes_.data() + data_offset_ + t.offset;
}

// Typed getters.

namespace {

[[noreturn]] void type_error(const std::string& path, std::string_view key, const GgufValue& v,
                             std::string_view expected) {
  std::string got = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) got = fmt::format("array of {}", gguf_type_name(v.elem_type));
  throw Error(fmt::format("{}: key '{}' has type {}, expected {}", path, key, got, expected));
}

}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing key '{}'", path_, key));
  if (v->type != GgufType::STRING) type_error(path_, key, *v, "string");
  return v->str;
}

std::string GgufFile::get_string(std::string_view key, const std::string& dflt) const {
  return has(key) ? get_string(key) : dflt;
}

uint64_t GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing key '{}'", path_, key));
  if (!v->is_integer()) type_error(path_, key, *v, "an unsigned integer");
  if (is_signed(v->type)) {
    if (v->i64 < 0) {
      throw Error(
          fmt::format("{}: key '{}' is {}, expected a non-negative integer", path_, key, v->i64));
    }
    return static_cast<uint64_t>(v->i64);
  }
  return v->u64;
}

uint64_t GgufFile::get_uint(std::string_view key, uint64_t dflt) const {
  return has(key) ? get_uint(key) : dflt;
}

int64_t GgufFile::get_int(std::string_view key, int64_t dflt) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return dflt;
  if (!v->is_integer()) type_error(path_, key, *v, "an integer");
  if (is_signed(v->type)) return v->i64;
  if (v->u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw Error(fmt::format("{}: key '{}' is {}, too large for a signed 64-bit integer", path_, key,
                            v->u64));
  }
  return static_cast<int64_t>(v->u64);
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing key '{}'", path_, key));
  if (v->is_float()) return v->f64;
  if (!v->is_integer()) type_error(path_, key, *v, "a number");
  return is_signed(v->type) ? static_cast<double>(v->i64) : static_cast<double>(v->u64);
}

double GgufFile::get_float(std::string_view key, double dflt) const {
  return has(key) ? get_float(key) : dflt;
}

bool GgufFile::get_bool(std::string_view key, bool dflt) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return dflt;
  if (v->type != GgufType::BOOL) type_error(path_, key, *v, "bool");
  return v->u64 != 0;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing key '{}'", path_, key));
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) {
    type_error(path_, key, *v, "array of string");
  }
  return v->strings;
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing key '{}'", path_, key));
  if (v->type != GgufType::ARRAY ||
      (v->elem_type != GgufType::FLOAT32 && v->elem_type != GgufType::FLOAT64)) {
    type_error(path_, key, *v, "array of f32");
  }
  std::vector<float> out(v->count);
  const uint8_t* p = v->raw.data();
  for (uint64_t i = 0; i < v->count; ++i) {
    if (v->elem_type == GgufType::FLOAT32) {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  }
  return out;
}

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(fmt::format("{}: missing key '{}'", path_, key));
  GgufValue probe;
  probe.type = v->elem_type;
  if (v->type != GgufType::ARRAY || !probe.is_integer()) {
    type_error(path_, key, *v, "array of i32");
  }
  // Any integer element type is accepted as long as every value fits in an int32.
  const size_t esize = gguf_scalar_size(v->elem_type);
  const bool sign = is_signed(v->elem_type);
  std::vector<int32_t> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    const uint8_t* p = v->raw.data() + i * esize;
    uint64_t bits = 0;
    std::memcpy(&bits, p, esize);  // little-endian: the value's low bytes come first
    int64_t s;
    if (sign) {
      const int shift = 64 - 8 * static_cast<int>(esize);
      s = static_cast<int64_t>(bits << shift) >> shift;  // sign-extend
    } else {
      s = bits > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
              ? std::numeric_limits<int64_t>::max()
              : static_cast<int64_t>(bits);
    }
    if (s < std::numeric_limits<int32_t>::min() || s > std::numeric_limits<int32_t>::max()) {
      throw Error(fmt::format("{}: key '{}' element {} does not fit in an int32", path_, key, i));
    }
    out[i] = static_cast<int32_t>(s);
  }
  return out;
}

}  // namespace engram
