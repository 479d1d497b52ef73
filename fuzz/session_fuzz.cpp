// libFuzzer target for saved sessions: any byte string, as a session of the golden test model,
// either loads -- and the resumed stream then runs -- or raises engram::Error. Anything else (a
// crash, a sanitizer report, another exception, a huge allocation) is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/session.h"
#include "engram/thread_pool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model =
      engram::Model::load(std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/llama_f32.gguf");
  static engram::ThreadPool pool(1);
  static const std::string path = "/tmp/engram_session_fuzz_" + std::to_string(getpid()) + ".bin";
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size > 0) std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    engram::LoadedSession s = engram::load_session(path, *model, pool, {});
    // What a resumed stream does first: a question, a decode step.
    const int32_t question[3] = {1, 2, 3};
    if (s.ctx->n_past() + 4 <= s.ctx->n_ctx()) {
      s.ctx->eval(question);
      const int32_t one[1] = {4};
      s.ctx->eval(one);
    }
  } catch (const engram::Error&) {
    // Refused: the expected outcome for most inputs.
  }
  std::remove(path.c_str());
  return 0;
}
