// libFuzzer target for saved sessions: any byte string, as a session of the golden test model,
// either loads -- and the resumed stream then runs, and a chat note is decoded -- or raises
// engram::Error. Anything else (a crash, a sanitizer report, another exception, a huge
// allocation) is a bug.
//
// Every record's checksum is set to match its payload before loading (when the input's first
// byte is even): a mutated byte would otherwise almost always stop at the checksum, and the
// checks behind it -- counts, indices, the policy's state -- are what need fuzzing. The
// checksum itself is tested in tests/test_session.cpp.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_note.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/session.h"
#include "engram/thread_pool.h"
#include "memory/page_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model =
      engram::Model::load(std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/llama_f32.gguf");
  static engram::ThreadPool pool(1);
  static const std::string path = "/tmp/engram_session_fuzz_" + std::to_string(getpid()) + ".bin";
  std::vector<uint8_t> bytes(data, data + size);
  if (size > 0 && data[0] % 2 == 0) {
    // Records: u64 length, payload, u64 checksum.
    for (size_t at = 0; size - at >= 16;) {
      uint64_t n;
      std::memcpy(&n, bytes.data() + at, 8);
      if (n > size - at - 16) break;
      const uint64_t sum = engram::PageFile::checksum(bytes.data() + at + 8, n);
      std::memcpy(bytes.data() + at + 8 + n, &sum, 8);
      at += 16 + n;
    }
  }
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size > 0) std::fwrite(bytes.data(), 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    engram::LoadedSession s = engram::load_session(path, *model, pool, {});
    // A chat session's note (seeds made by `engram chat --session`): decoded, or refused.
    if (!s.note.empty()) {
      try {
        (void)engram::chat::decode_chat_note(s.note, path);
      } catch (const engram::Error&) {
      }
    }
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
