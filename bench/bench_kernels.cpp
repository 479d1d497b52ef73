// Micro-benchmarks of the matmul kernels on the shapes of a ~125M llama model (768 wide,
// FFN 2048, 4 KV heads of 64) with 2 threads, of attention, and of what episodic memory adds
// to a prefill chunk of engram-tiny (received attention, the surprise's log-sum-exp).
//
//   engram_bench --benchmark_filter=Decode   weight bytes streamed per second (bytes_per_second)
//   engram_bench --benchmark_filter=Prefill  FLOP/s counter (2 * rows * cols * n_tok)
//
// Decode cycles through enough copies of the matrix (>= 256 MiB) that the weights come from
// DRAM, not the 105 MiB L3, as they do when a whole model is decoded.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "engram/tensor_type.h"
#include "engram/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/ops_internal.h"
#include "kernels/quant.h"

namespace {

using engram::TensorType;

constexpr TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16,
                                 TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
                                 TensorType::Q6_K, TensorType::Q5_K};
constexpr int kNumTypes = sizeof(kTypes) / sizeof(kTypes[0]);
// Types with a packed layout (prepack_weights) on AVX-512: Q8_0 and every K-quant.
constexpr bool has_packed_layout(int t) {
  return t >= 3;
}

struct Setup {
  std::vector<uint8_t> bytes;  // [copies, rows, row_bytes]
  size_t matrix_bytes = 0;
  int64_t copies = 1;
  std::vector<float> x;  // [n_tok, cols]
  std::vector<float> y;  // [n_tok, rows]
};

Setup make_setup(TensorType type, int64_t rows, int64_t cols, int64_t n_tok, size_t min_total) {
  Setup s;
  const size_t rb = engram::tensor_row_bytes(type, cols);
  s.matrix_bytes = rb * rows;
  s.copies = std::max<int64_t>(1, static_cast<int64_t>(min_total / s.matrix_bytes));
  s.bytes.resize(s.matrix_bytes * s.copies);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = nd(rng);
    engram::quantize_row(type, row.data(), s.bytes.data() + r * rb, cols);
  }
  for (int64_t c = 1; c < s.copies; ++c) {
    std::copy(s.bytes.begin(), s.bytes.begin() + s.matrix_bytes,
              s.bytes.begin() + c * s.matrix_bytes);
  }
  s.x.resize(n_tok * cols);
  for (auto& v : s.x) v = nd(rng);
  s.y.resize(n_tok * rows);
  return s;
}

// Args: type index, rows, cols, n_tok, isa (0 = scalar, 1 = avx2, 2 = avx512; -1 = best),
// threads, packed (1: the rows repacked by prepack_weights, as a loaded model has them; only
// where the ISA has a packed layout for the type).
void BM_Matmul(benchmark::State& state) {
  const TensorType type = kTypes[state.range(0)];
  const int64_t rows = state.range(1), cols = state.range(2), n_tok = state.range(3);
  const int isa_arg = static_cast<int>(state.range(4));
  const engram::Isa isa = isa_arg < 0 ? engram::best_isa() : static_cast<engram::Isa>(isa_arg);
  const bool packed = state.range(6) != 0;
  if (!engram::isa_available(isa)) {
    state.SkipWithError("ISA not available on this CPU");
    return;
  }
  if (packed && !engram::packs_type(isa, type)) {
    state.SkipWithError("no packed layout for this type and ISA");
    return;
  }
  // Decode streams the weights from DRAM unless the shape is small enough to stay in L2
  // (rows < 512: a kernel-throughput figure without the memory system).
  const bool from_dram = n_tok == 1 && rows >= 512;
  Setup s = make_setup(type, rows, cols, n_tok, from_dram ? (256u << 20) : 0);
  engram::ThreadPool pool(static_cast<int>(state.range(5)));
  const size_t rb = engram::tensor_row_bytes(type, cols);
  std::vector<engram::WeightMatrix> ws;
  for (int64_t c = 0; c < s.copies; ++c) {
    ws.push_back({type, s.bytes.data() + c * s.matrix_bytes, rows, cols, rb, nullptr});
    if (packed) ws.back().packed = engram::pack_weights(ws.back());
  }
  int64_t i = 0;
  for (auto _ : state) {
    engram::matmul_with_isa(isa, ws[i % s.copies], s.x.data(), n_tok, s.y.data(), pool);
    benchmark::DoNotOptimize(s.y.data());
    ++i;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(s.matrix_bytes));
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * rows * cols * n_tok * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  state.SetLabel(std::string(engram::tensor_type_info(type).name) + " " + engram::isa_name(isa) +
                 (packed ? " packed" : ""));
}

// The quantized types also run packed (as a loaded model runs them on a CPU with a packed layout).
template <int Threads>
void DecodeArgs(benchmark::internal::Benchmark* b) {
  for (int t = 0; t < kNumTypes; ++t) {
    for (int packed : {0, 1}) {
      if (packed && !has_packed_layout(t)) continue;
      b->Args({t, 768, 768, 1, -1, Threads, packed});
      b->Args({t, 2048, 768, 1, -1, Threads, packed});
      b->Args({t, 768, 2048, 1, -1, Threads, packed});
      b->Args({t, 8192, 2048, 1, -1, Threads, packed});  // the 1.1B model's FFN up
    }
  }
  // The lower ISAs on the commonest quantized shape, for comparison.
  for (int t : {3, 4, 5, 6}) {
    b->Args({t, 2048, 768, 1, 0, Threads, 0});
    b->Args({t, 2048, 768, 1, 1, Threads, 0});
  }
}

void HotArgs(benchmark::internal::Benchmark* b) {
  for (int t = 0; t < kNumTypes; ++t) {
    for (int isa : {0, 1, 2}) b->Args({t, 256, 768, 1, isa, 1, 0});
    if (has_packed_layout(t)) b->Args({t, 256, 768, 1, 2, 1, 1});
  }
}

template <int Threads>
void PrefillArgs(benchmark::internal::Benchmark* b) {
  for (int t = 0; t < kNumTypes; ++t) {
    for (int packed : {0, 1}) {
      if (packed && !has_packed_layout(t)) continue;
      b->Args({t, 2048, 768, 64, -1, Threads, packed});
      b->Args({t, 2048, 768, 512, -1, Threads, packed});
      b->Args({t, 768, 2048, 512, -1, Threads, packed});
    }
  }
  for (int t : {3, 4, 5, 6}) {
    b->Args({t, 2048, 768, 512, 0, Threads, 0});
    b->Args({t, 2048, 768, 512, 1, Threads, 0});
  }
}

// Two threads: wall-clock rates, what the engine sees.
BENCHMARK(BM_Matmul)
    ->Name("Decode")
    ->ArgNames({"type", "rows", "cols", "n_tok", "isa", "threads", "packed"})
    ->Apply(DecodeArgs<2>)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Matmul)
    ->Name("Prefill")
    ->ArgNames({"type", "rows", "cols", "n_tok", "isa", "threads", "packed"})
    ->Apply(PrefillArgs<2>)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// One thread, rates per CPU second: a kernel-speed figure that stays meaningful on a busy
// machine (time spent descheduled is not counted).
BENCHMARK(BM_Matmul)
    ->Name("Decode1T")
    ->ArgNames({"type", "rows", "cols", "n_tok", "isa", "threads", "packed"})
    ->Apply(DecodeArgs<1>)
    ->Unit(benchmark::kMicrosecond);
// Weights in L2, one thread: what the kernel could do if memory were free.
BENCHMARK(BM_Matmul)
    ->Name("DecodeL2")
    ->ArgNames({"type", "rows", "cols", "n_tok", "isa", "threads", "packed"})
    ->Apply(HotArgs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Matmul)
    ->Name("Prefill1T")
    ->ArgNames({"type", "rows", "cols", "n_tok", "isa", "threads", "packed"})
    ->Apply(PrefillArgs<1>)
    ->Unit(benchmark::kMillisecond);

// Random queries, keys and values of one layer and the AttentionArgs over them.
struct AttnInputs {
  std::vector<float> q, k, v, out;
  engram::AttentionArgs a;
  AttnInputs(int n_q, int64_t n_kv, int n_head, int n_head_kv, int hd, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    q.resize(size_t(n_q) * n_head * hd);
    k.resize(n_kv * n_head_kv * hd);
    v.resize(k.size());
    out.resize(q.size());
    for (auto* vec : {&q, &k, &v})
      for (auto& f : *vec) f = nd(rng);
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.k_stride = a.v_stride = n_head_kv * hd;
    a.out = out.data();
    a.n_q = n_q;
    a.n_kv = n_kv;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.head_dim = hd;
    a.scale = 1.0f / std::sqrt(float(hd));
  }
};

// Attention of the 125M model's layer shape (12 heads, 4 KV heads, head_dim 64).
// Args: n_q, n_kv, threads.
void BM_Attention(benchmark::State& state) {
  const int n_q = static_cast<int>(state.range(0));
  const int64_t n_kv = state.range(1);
  const int n_head = 12, hd = 64;
  AttnInputs in(n_q, n_kv, n_head, 4, hd, 2);
  const engram::AttentionArgs& a = in.a;
  engram::ThreadPool pool(static_cast<int>(state.range(2)));
  for (auto _ : state) {
    engram::attention(a, pool);
    benchmark::DoNotOptimize(in.out.data());
  }
  // Visible keys summed over queries, times heads, times 2 * hd for QK and for PV.
  double pairs = 0;
  for (int i = 0; i < n_q; ++i) pairs += static_cast<double>(n_kv - n_q + i + 1);
  state.counters["FLOP/s"] =
      benchmark::Counter(pairs * n_head * 4.0 * hd * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Attention)
    ->Name("Attention")
    ->ArgNames({"n_q", "n_kv", "threads"})
    ->Args({1, 4096, 2})
    ->Args({512, 512, 2})
    ->Args({512, 4096, 2})
    ->Args({1, 4096, 1})
    ->Args({512, 512, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// What an episodic prefill chunk of engram-tiny pays beside attention itself (8 heads, 4 KV
// heads, head_dim 32, a 124-token chunk against 640 planned keys): attention with its
// probabilities written out, then their sums per key. Args: threads.
void BM_AttentionReceived(benchmark::State& state) {
  const int n_q = 124, n_head = 8;
  const int64_t n_kv = 640;
  AttnInputs in(n_q, n_kv, n_head, 4, 32, 3);
  engram::AttentionArgs& a = in.a;
  std::vector<float> probs(size_t(n_q) * n_head * n_kv), recv(n_kv);
  const bool with_received = state.range(1) != 0;
  if (with_received) a.probs = probs.data();
  engram::ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    engram::attention(a, pool);
    if (with_received) engram::attention_received(a, recv.data(), pool);
    benchmark::DoNotOptimize(recv.data());
  }
}
BENCHMARK(BM_AttentionReceived)
    ->Name("AttentionReceived")
    ->ArgNames({"threads", "received"})
    ->Args({2, 0})
    ->Args({2, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The per-token surprise's log-softmax normaliser over engram-tiny's 4,096 logits.
// Args: isa (0 scalar reference, 1 AVX2).
void BM_LogSumExp(benchmark::State& state) {
  if (state.range(0) == 1 && !engram::isa_available(engram::Isa::Avx2)) {
    state.SkipWithError("no AVX2");
    return;
  }
  const engram::VecKernels& vk =
      state.range(0) == 1 ? engram::vec_kernels_avx2() : engram::vec_kernels_scalar();
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(4096);
  for (auto& f : x) f = nd(rng);
  for (auto _ : state) benchmark::DoNotOptimize(vk.log_sum_exp(x.data(), int64_t(x.size())));
  state.SetItemsProcessed(state.iterations() * int64_t(x.size()));
}
BENCHMARK(BM_LogSumExp)->Name("LogSumExp")->ArgNames({"isa"})->Arg(0)->Arg(1);

}  // namespace
