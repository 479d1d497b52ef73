// Saved sessions (include/engram/session.h). Records, in order:
//   header   magic, format version, model fingerprint, the policy's MemoryParams
//   note     the application's own bytes (chat: src/chat/chat_note.h); from format 2 on
//   stream   n_past, cells, last logits, ... (Context::save_state)
//   policy   what the memory policy keeps beside the cells (MemoryPolicy::save_state)
//   kv ...   the cells' K/V, 64 cells per record (after the policy: loading moves the cells
//            it has settled to the memory file as it goes)
//   end      a marker: a file cut at a record boundary is refused too
#include "engram/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "engram/error.h"
#include "engram/model.h"
#include "memory/page_file.h"
#include "util/errno_text.h"
#include "util/record_io.h"

namespace engram {
namespace {

constexpr char kMagic[8] = {'E', 'N', 'G', 'R', 'A', 'M', 'S', 'S'};
constexpr size_t kMaxNote = size_t(1) << 30;
constexpr uint32_t kVersion = 3;  // 1: no note record; 2: no lexical weight (both still read)

void put_params(RecordWriter& w, const MemoryParams& p) {
  w.str(p.kind);
  w.put<int64_t>(p.n_ctx);
  for (int v : {p.n_sink, p.n_init, p.n_local, p.block_size, p.repr_topk, p.topk, p.n_mem, p.tau,
                p.min_event, p.max_event, static_cast<int>(p.refine), p.retrieve_every}) {
    w.put<int32_t>(v);
  }
  for (double v : {p.gamma, p.contiguity, p.chunk_gate}) w.put<double>(v);
  w.put<uint8_t>(p.shared_retrieval ? 1 : 0);
  w.put<uint8_t>(p.kv_f16 ? 1 : 0);
  w.put<double>(p.lexical);
}

MemoryParams get_params(RecordReader& r, uint32_t version) {
  MemoryParams p;
  p.kind = r.str("kind", 16);
  p.n_ctx = r.get<int64_t>("n_ctx");
  for (int* v : {&p.n_sink, &p.n_init, &p.n_local, &p.block_size, &p.repr_topk, &p.topk, &p.n_mem,
                 &p.tau, &p.min_event, &p.max_event}) {
    *v = r.get<int32_t>("memory parameter");
  }
  const int32_t refine = r.get<int32_t>("refine");
  if (refine < 0 || refine > static_cast<int>(Refine::conductance)) {
    r.fail("refine", fmt::format("{} is not a refinement", refine));
  }
  p.refine = static_cast<Refine>(refine);
  p.retrieve_every = r.get<int32_t>("retrieve_every");
  p.gamma = r.get<double>("gamma");
  p.contiguity = r.get<double>("contiguity");
  p.chunk_gate = r.get<double>("chunk_gate");
  p.shared_retrieval = r.get<uint8_t>("shared_retrieval") != 0;
  p.kv_f16 = r.get<uint8_t>("kv_f16") != 0;
  // Formats 1-2 retrieved by attention alone.
  p.lexical = version >= 3 ? r.get<double>("lexical") : 0.0;
  return p;
}

}  // namespace

uint64_t model_fingerprint(const Model& model) {
  const ModelConfig& c = model.config();
  std::string id =
      fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", c.arch, c.n_vocab, c.n_embd, c.n_layer,
                  c.n_head, c.n_head_kv, c.head_dim, c.n_ff, c.n_ctx_train, c.rms_eps, c.rope_dim,
                  c.rope_base, c.rope_freq_scale);
  // Every tensor's name, type and shape, and its first bytes: another fine-tune of the same
  // architecture differs there.
  const GgufFile& f = model.file();
  for (const GgufTensorInfo& t : f.tensors()) {
    id += fmt::format("|{}:{}", t.name, t.type);
    for (int64_t d : t.ne) id += fmt::format(",{}", d);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(t.nbytes, 4096));
    id.append(reinterpret_cast<const char*>(f.tensor_data(t)), n);
  }
  return PageFile::checksum(id.data(), id.size());
}

void save_session(const Context& ctx, const MemoryParams& memory, const std::string& path,
                  const std::string& note) {
  if (memory.kind != ctx.policy().name()) {
    throw Error(fmt::format("save_session: the parameters are for '{}', the context runs '{}'",
                            memory.kind, ctx.policy().name()));
  }
  // Written next to the target and renamed over it at the end: a failed save leaves any older
  // session of that name as it was.
  const std::string tmp = path + ".part";
  try {
    RecordWriter w(tmp);
    w.bytes(kMagic, sizeof kMagic);
    w.put<uint32_t>(kVersion);
    w.put<uint64_t>(model_fingerprint(ctx.model()));
    put_params(w, memory);
    w.end_record();
    w.str(note);
    w.end_record();
    ctx.save_state(w);
    w.str("end");
    w.end_record();
    w.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(fmt::format("cannot write '{}': {}", path, errno_text(err)));
  }
}

void check_session_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw Error(fmt::format("cannot write a session to '{}': it is a directory", path));
  }
  const std::string tmp = path + ".part";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    throw Error(fmt::format("cannot write a session to '{}': {}", path, errno_text(errno)));
  }
  std::fclose(f);
  std::remove(tmp.c_str());
}

LoadedSession load_session(const std::string& path, const Model& model, ThreadPool& pool,
                           const ContextParams& params, const std::string& kv_dir,
                           int kv_cache_mib) {
  RecordReader r(path);
  r.next("header");
  char magic[sizeof kMagic];
  r.bytes(magic, sizeof magic, "magic");
  if (std::memcmp(magic, kMagic, sizeof magic) != 0) r.fail("magic", "not an engram session file");
  const uint32_t version = r.get<uint32_t>("version");
  if (version < 1 || version > kVersion) {
    r.fail("version",
           fmt::format("format {}; this engram reads formats 1 to {}", version, kVersion));
  }
  if (r.get<uint64_t>("model") != model_fingerprint(model)) {
    r.fail("model", "the session was saved with another model");
  }
  LoadedSession s;
  s.memory = get_params(r, version);
  r.done();
  if (version >= 2) {
    r.next("note");
    s.note = r.str("note", kMaxNote);
    r.done();
  }
  s.memory.kv_dir = kv_dir;
  s.memory.kv_cache_mib = kv_cache_mib;
  std::unique_ptr<MemoryPolicy> policy;
  try {
    policy = make_memory_policy(s.memory, model_shape(model.config()));
  } catch (const Error& e) {
    r.fail("memory parameters", e.what());
  }
  s.ctx = std::make_unique<Context>(model, pool, params, std::move(policy));
  s.ctx->load_state(r);
  r.next("end");
  if (r.str("end", 8) != "end") r.fail("end", "missing");
  r.done();
  if (!r.at_end()) r.fail("end", "bytes follow the last record");
  return s;
}

}  // namespace engram
