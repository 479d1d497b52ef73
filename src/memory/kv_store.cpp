#include "memory/kv_store.h"

#include <fmt/format.h>

#include <cassert>
#include <cstring>

#include "engram/error.h"

namespace engram {
namespace {

template <typename T>
void resize_all(std::vector<std::vector<T>>& ts, size_t len) {
  for (auto& t : ts) t.resize(len);
}

template <typename T>
void erase_all(std::vector<std::vector<T>>& ts, size_t begin, size_t end) {
  for (auto& t : ts) {
    if (t.empty()) continue;
    t.erase(t.begin() + begin, t.begin() + end);
    if (t.size() * 2 < t.capacity()) t.shrink_to_fit();
  }
}

}  // namespace

void KvStore::use_file(const std::string& dir, uint64_t cache_bytes) {
  if (n_cells_ > 0) throw Error("a memory file must be chosen before any cell is stored");
  // A page: for each layer, the keys of its kPageCells cells, then their values.
  const size_t page_bytes = k_.size() * 2 * kPageCells * kv_dim_ * elem_bytes();
  const size_t cache_pages = std::max<uint64_t>(1, cache_bytes / page_bytes);
  file_ = PageFile::temporary(dir, page_bytes, cache_pages);
  page_.resize(page_bytes);
}

void KvStore::settle(int64_t settled) {
  if (!file_) return;
  settled = std::min(settled, n_cells_);
  const size_t row = size_t(kv_dim_) * elem_bytes();
  const size_t run = size_t(kPageCells) * row;  // one layer's keys (or values) in a page
  int64_t moved = 0;
  while (base_ + moved + kPageCells <= settled) {
    const size_t from = size_t(moved) * kv_dim_;  // element offset of the page in RAM
    uint8_t* out = page_.data();
    for (size_t l = 0; l < k_.size(); ++l) {
      const void* src[2];
      if (f16_) {
        src[0] = kh_[l].data() + from;
        src[1] = vh_[l].data() + from;
      } else {
        src[0] = k_[l].data() + from;
        src[1] = v_[l].data() + from;
      }
      for (const void* s : src) {
        std::memcpy(out, s, run);
        out += run;
      }
    }
    file_->append(page_.data());
    moved += kPageCells;
  }
  if (moved == 0) return;
  const size_t len = size_t(moved) * kv_dim_;
  erase_all(k_, 0, len);
  erase_all(v_, 0, len);
  erase_all(kh_, 0, len);
  erase_all(vh_, 0, len);
  base_ += moved;
}

void KvStore::resize(int64_t n) {
  if (n < base_) {  // forgetting cells that are in the file: start over
    if (n != 0)
      throw Error(fmt::format("kv store: cannot shrink to {} cells, {} are in the file", n, base_));
    base_ = 0;
    file_->clear();
  }
  const size_t len = static_cast<size_t>(n - base_) * kv_dim_;
  if (f16_) {
    resize_all(kh_, len);
    resize_all(vh_, len);
  } else {
    resize_all(k_, len);
    resize_all(v_, len);
  }
  n_cells_ = n;
}

void KvStore::reserve(int64_t n) {
  const size_t len = static_cast<size_t>(std::max<int64_t>(0, n - base_)) * kv_dim_;
  for (size_t l = 0; l < k_.size(); ++l) {
    if (f16_) {
      kh_[l].reserve(len);
      vh_[l].reserve(len);
    } else {
      k_[l].reserve(len);
      v_[l].reserve(len);
    }
  }
}

void KvStore::erase(int64_t begin, int64_t end) {
  assert(begin >= base_ && "cells in the memory file are never erased");
  const size_t b = size_t(begin - base_) * kv_dim_, e = size_t(end - base_) * kv_dim_;
  erase_all(k_, b, e);
  erase_all(v_, b, e);
  erase_all(kh_, b, e);
  erase_all(vh_, b, e);
  n_cells_ -= end - begin;
}

void KvStore::read(int which, int layer, int64_t cell, float* out, bool keep) const {
  if (cell < base_) {
    read_from_file(which, layer, cell, out, keep);
    return;
  }
  const size_t at = static_cast<size_t>(cell - base_) * kv_dim_;
  if (f16_) {
    const auto& h = which == 0 ? kh_ : vh_;
    dequantize_row(TensorType::F16, h[layer].data() + at, out, kv_dim_);
  } else {
    const auto& f = which == 0 ? k_ : v_;
    std::copy(f[layer].data() + at, f[layer].data() + at + kv_dim_, out);
  }
}

void KvStore::read_from_file(int which, int layer, int64_t cell, float* out, bool keep) const {
  const uint8_t* page = file_->page(cell / kPageCells, keep);
  const size_t row = size_t(kv_dim_) * elem_bytes();
  const uint8_t* src = page + (size_t(layer) * 2 + size_t(which)) * kPageCells * row +
                       size_t(cell % kPageCells) * row;
  if (f16_) {
    dequantize_row(TensorType::F16, src, out, kv_dim_);
  } else {
    std::memcpy(out, src, row);
  }
}

uint64_t KvStore::bytes() const {
  uint64_t b = 0;
  for (const auto& t : k_) b += t.capacity() * sizeof(float);
  for (const auto& t : v_) b += t.capacity() * sizeof(float);
  for (const auto& t : kh_) b += t.capacity() * sizeof(uint16_t);
  for (const auto& t : vh_) b += t.capacity() * sizeof(uint16_t);
  if (file_) b += file_->cache_bytes() + file_->pages() * sizeof(uint64_t);
  return b;
}

}  // namespace engram
