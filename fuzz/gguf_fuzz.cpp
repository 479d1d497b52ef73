// libFuzzer target for the GGUF reader: any byte string either parses or raises engram::Error.
// Anything else (a crash, a sanitizer report, another exception, a huge allocation) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "engram/error.h"
#include "engram/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto f = engram::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    // Touch what a loader or `engram inspect` would: every value, getter and tensor range.
    size_t sink = 0;
    for (const auto& [key, v] : f->metadata()) {
      sink += v.to_display().size();
      try {
        if (v.type == engram::GgufType::ARRAY) {
          sink += f->get_i32_array(key).size() + f->get_f32_array(key).size();
        } else {
          sink += f->get_float(key) > 0 ? 1 : 0;
        }
      } catch (const engram::Error&) {
        // Type mismatches are expected here.
      }
    }
    for (const engram::GgufTensorInfo& t : f->tensors()) {
      const uint8_t* p = f->tensor_data(t);
      if (t.nbytes > 0) sink += p[0] + p[t.nbytes - 1];  // must lie inside the input
    }
    (void)sink;
  } catch (const engram::Error&) {
  }
  return 0;
}
