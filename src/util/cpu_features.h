// What the CPU (and the OS, for the wider registers) supports, read once with CPUID.
// GCC's and clang's __builtin_cpu_supports disagree on which feature names they accept
// (clang 14 lacks "f16c" and "bmi2"), so the bits are read here directly.
#pragma once

namespace engram {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
};

const CpuFeatures& cpu_features();

}  // namespace engram
