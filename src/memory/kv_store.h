// K/V tensors of the cached cells, per layer. Cell c of layer l holds the key (rotated at the
// cell's stream position, or before RoPE when the policy asks) and the value of one token:
// [n_cells, n_head_kv * head_dim]. Stored as f32, or as f16 (half the RAM) when the policy
// asks; f16 cells are read through read_k/read_v, which convert.
//
// With a memory file (use_file), cells the policy has settled -- moved into memory units that
// are never written again and are read only when a plan retrieves them -- leave RAM in pages of
// kPageCells cells (every layer's keys and values of those cells) for an append-only file, and
// are read back through the file's cache. Reads give the same bytes either way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engram/tensor_type.h"
#include "kernels/quant.h"
#include "memory/page_file.h"

namespace engram {

class KvStore {
 public:
  // Cells per page of the memory file.
  static constexpr int64_t kPageCells = 64;

  KvStore(int n_layer, int kv_dim, bool f16 = false)
      : kv_dim_(kv_dim), f16_(f16), k_(n_layer), v_(n_layer), kh_(n_layer), vh_(n_layer) {}

  int kv_dim() const { return kv_dim_; }
  bool f16() const { return f16_; }
  int64_t size() const { return n_cells_; }

  // Moves settled cells to a new file in `dir` (removed from the directory at once) with a
  // cache of about cache_bytes; before any cell is stored.
  void use_file(const std::string& dir, uint64_t cache_bytes);
  bool has_file() const { return file_ != nullptr; }
  // Moves the whole pages of cells [0, settled) that are still in RAM to the file (no-op
  // without one). Those cells must never be written or erased again.
  void settle(int64_t settled);
  // Cells [0, in_ram_begin()) are in the file; only cells from there have k()/v() pointers.
  int64_t in_ram_begin() const { return base_; }

  // Makes room for cells [0, n) in every layer (contents of new cells are undefined); n below
  // the cells in the file forgets everything (the file is emptied).
  void resize(int64_t n);
  void reserve(int64_t n);
  // Drops cells [begin, end) of every layer; later cells move down. Capacity is released once
  // the store holds under half of it, so a stream that forgets stays bounded in RAM. Cells in
  // the file cannot be erased.
  void erase(int64_t begin, int64_t end);

  void write(int layer, int64_t cell, const float* k, const float* v) {
    const size_t at = static_cast<size_t>(cell - base_) * kv_dim_;
    if (f16_) {
      quantize_row(TensorType::F16, k, kh_[layer].data() + at, kv_dim_);
      quantize_row(TensorType::F16, v, vh_[layer].data() + at, kv_dim_);
    } else {
      std::copy(k, k + kv_dim_, k_[layer].data() + at);
      std::copy(v, v + kv_dim_, v_[layer].data() + at);
    }
  }
  // keep false: a cell in the file is read without filling the file's cache (a pass over
  // every cell).
  void read_k(int layer, int64_t cell, float* out, bool keep = true) const {
    read(0, layer, cell, out, keep);
  }
  void read_v(int layer, int64_t cell, float* out, bool keep = true) const {
    read(1, layer, cell, out, keep);
  }

  // Direct pointers to cells in RAM (cell >= in_ram_begin()), f32 stores only.
  float* k(int layer, int64_t cell) { return k_[layer].data() + (cell - base_) * kv_dim_; }
  float* v(int layer, int64_t cell) { return v_[layer].data() + (cell - base_) * kv_dim_; }
  const float* k(int layer, int64_t cell) const {
    return k_[layer].data() + (cell - base_) * kv_dim_;
  }
  const float* v(int layer, int64_t cell) const {
    return v_[layer].data() + (cell - base_) * kv_dim_;
  }

  // Bytes in RAM (the cells held there and the file's cache), and bytes in the file.
  uint64_t bytes() const;
  uint64_t file_bytes() const { return file_ ? file_->file_bytes() : 0; }

 private:
  size_t elem_bytes() const { return f16_ ? sizeof(uint16_t) : sizeof(float); }
  // which: 0 keys, 1 values.
  void read(int which, int layer, int64_t cell, float* out, bool keep) const;
  void read_from_file(int which, int layer, int64_t cell, float* out, bool keep) const;

  int kv_dim_;
  bool f16_;
  int64_t n_cells_ = 0;
  int64_t base_ = 0;                       // cells [0, base_) are in the file, as whole pages
  std::vector<std::vector<float>> k_, v_;  // [layer][(cell - base_) * kv_dim]
  std::vector<std::vector<uint16_t>> kh_, vh_;
  std::unique_ptr<PageFile> file_;  // pages are read back through its cache (hence mutable use)
  std::vector<uint8_t> page_;       // scratch: one page being written
};

}  // namespace engram
