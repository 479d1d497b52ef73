// Saved sessions: a stream's whole state -- its cells, their K/V, the memory policy's units,
// representatives and segmenter, the last logits -- in one file, resumed later so that what
// follows is bit-identical to never having stopped. Read a book once, ask about it tomorrow.
//
// The file is a sequence of checksummed records (src/util/record_io.h). Loading checks the
// model it was saved with (a fingerprint of its hyperparameters and tensors), every count
// against the file's size before allocating, and every index against the state it points
// into; a damaged or hostile file is an error naming the record and field, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engram/context.h"
#include "engram/memory.h"

namespace engram {

class Model;
class ThreadPool;

// Writes ctx's state to `path`. `memory` must be the parameters ctx's policy was made from
// (make_memory_policy); the session records them, and a resumed session is made with them.
// `note` is kept for the application (`engram chat` stores its conversation there). The file
// is written beside `path` and renamed over it: a failed save leaves an older file intact.
void save_session(const Context& ctx, const MemoryParams& memory, const std::string& path,
                  const std::string& note = "");

// Throws now, naming the problem, if a session could not be written to `path` later (a missing
// directory, no permission, a directory of that name): call it before a long read.
void check_session_path(const std::string& path);

struct LoadedSession {
  MemoryParams memory;  // as saved, with this run's storage choices (kv_dir, kv_cache_mib)
  std::unique_ptr<Context> ctx;
  std::string note;  // as saved ("" for files of format 1)
};

// Resumes a session saved with `model`. kv_dir / kv_cache_mib say where this run keeps memory
// units (they need not match the run that saved it).
LoadedSession load_session(const std::string& path, const Model& model, ThreadPool& pool,
                           const ContextParams& params, const std::string& kv_dir = "",
                           int kv_cache_mib = 256);

// A 64-bit fingerprint of a model: its hyperparameters, and every tensor's name, type, shape
// and first bytes.
uint64_t model_fingerprint(const Model& model);

}  // namespace engram
