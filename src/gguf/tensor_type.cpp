// The ggml tensor type table. Block geometry follows ggml's block structs (ggml-common.h):
// e.g. Q4_K = f16 d + f16 dmin + 12 bytes of 6-bit scales + 128 bytes of nibbles = 144.
#include "engram/tensor_type.h"

#include <fmt/format.h>

#include <cctype>
#include <limits>

#include "engram/error.h"

namespace engram {

namespace {

struct TypeEntry {
  uint32_t id;
  TensorTypeInfo info;
};

// Ids 4 and 5 (the removed Q4_2/Q4_3) and 16..23, 29 (IQ formats, I-quants) are not listed:
// the reader reports them as unknown types with their id.
constexpr TypeEntry kTypes[] = {
    {0, {"f32", 1, 4, true}},       {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},    {3, {"q4_1", 32, 20, false}},
    {6, {"q5_0", 32, 22, false}},   {7, {"q5_1", 32, 24, false}},
    {8, {"q8_0", 32, 34, true}},    {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, false}}, {11, {"q3_K", 256, 110, false}},
    {12, {"q4_K", 256, 144, true}}, {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}}, {15, {"q8_K", 256, 292, false}},
    {24, {"i8", 1, 1, false}},      {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},     {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},     {30, {"bf16", 1, 2, true}},
};

std::string lower(const std::string& s) {
  std::string out = s;
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

constexpr const char* kParseable = "f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k";

}  // namespace

const TensorTypeInfo* tensor_type_info(uint32_t type_id) {
  for (const TypeEntry& e : kTypes) {
    if (e.id == type_id) return &e.info;
  }
  return nullptr;
}

const TensorTypeInfo& tensor_type_info(TensorType type) {
  const TensorTypeInfo* info = tensor_type_info(static_cast<uint32_t>(type));
  if (info == nullptr) {
    throw Error(fmt::format("unknown tensor type id {}", static_cast<uint32_t>(type)));
  }
  return *info;
}

std::string tensor_type_name(uint32_t type_id) {
  const TensorTypeInfo* info = tensor_type_info(type_id);
  if (info == nullptr) return fmt::format("unknown({})", type_id);
  return info->name;
}

size_t tensor_row_bytes(TensorType type, int64_t n) {
  const TensorTypeInfo& info = tensor_type_info(type);
  if (n < 0 || n % info.block_size != 0) {
    throw Error(
        fmt::format("tensor type {}: a row of {} elements is not a multiple of the block size {}",
                    info.name, n, info.block_size));
  }
  const uint64_t blocks = static_cast<uint64_t>(n / info.block_size);
  if (blocks > std::numeric_limits<size_t>::max() / info.block_bytes) {
    throw Error(fmt::format("tensor type {}: a row of {} elements is too large", info.name, n));
  }
  return static_cast<size_t>(blocks) * info.block_bytes;
}

TensorType parse_tensor_type(const std::string& name) {
  const std::string want = lower(name);
  for (const TypeEntry& e : kTypes) {
    if (lower(e.info.name) != want) continue;
    if (!e.info.supported) {
      throw Error(
          fmt::format("tensor type '{}' is not supported (expected one of {})", name, kParseable));
    }
    return static_cast<TensorType>(e.id);
  }
  throw Error(fmt::format("unknown tensor type '{}' (expected one of {})", name, kParseable));
}

}  // namespace engram
