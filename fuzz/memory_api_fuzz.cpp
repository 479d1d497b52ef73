// Fuzz target: the memory REST API's work (src/server/memory_api.h) over a real SQLite store,
// with a scripted model. Any input either succeeds with a 200 and a JSON body, or throws ApiError
// with a 4xx status and a message; nothing else escapes, nothing crashes, no response holds
// another user's memory, and the other user's memory is never changed or forgotten.
//
// Input: byte 0 picks the verb (add, list, wipe, get, update, remove, history, search, end); the
// rest is the body. For the verbs that take a memory id the body's first line is the id and the
// rest the body.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "engram/memory_session.h"
#include "server/api_error.h"
#include "server/memory_api.h"

namespace {

using namespace engram;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

// Embeddings from the bytes; completions echo the last message (so the fuzzer's text reaches
// the extraction and Add/Merge parsers too).
class EchoModel : public agent_memory::MemoryModel {
 public:
  std::vector<float> embed(std::string_view text) override {
    std::vector<float> v(8, 0.0f);
    for (size_t i = 0; i < text.size(); ++i) v[i % 8] += static_cast<unsigned char>(text[i]);
    return v;
  }
  std::string complete(const std::vector<ChatMessage>& messages,
                       const std::shared_ptr<const Grammar>&, int) override {
    return messages.empty() ? "" : messages.back().content;
  }
  size_t count_tokens(const std::vector<ChatMessage>& messages) override {
    size_t n = 0;
    for (const auto& m : messages) n += m.content.size() / 4 + 4;
    return n;
  }
  size_t context_tokens() const override { return 2048; }
};

struct World {
  std::string path;
  std::unique_ptr<agent_memory::MemoryStore> store;
  EchoModel model;
  std::unique_ptr<server::MemoryApi> api;
  int64_t other_id = 0;

  World() {
    path = (std::filesystem::temp_directory_path() /
            ("engram_memory_api_fuzz_" + std::to_string(getpid()) + ".db"))
               .string();
    store = agent_memory::open_memory_store("sqlite:" + path);
    agent_memory::NewMemory m;
    m.summary = "Other user's secret is quokka.";
    other_id = store->add("other", m, "fuzz").id;
    api = std::make_unique<server::MemoryApi>(
        *store, [this](const auto& fn) { fn(model); },
        [this](const std::string& user, const std::string&) {
          agent_memory::MemorySession s(store.get(), user, model);
          return s.end_conversation();
        });
  }
  ~World() {
    api.reset();
    store.reset();
    for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path + ext);
  }
};

// No object in a response belongs to another user or names the other user's memory.
bool no_other_user(const nlohmann::json& j, const std::string& other_id) {
  if (j.is_array()) {
    for (const auto& x : j)
      if (!no_other_user(x, other_id)) return false;
    return true;
  }
  if (!j.is_object()) return true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "user_id" && *it != "fuzz") return false;
    if ((it.key() == "id" || it.key() == "memory_id") && *it == other_id) return false;
    if (!no_other_user(*it, other_id)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static World w;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nl = rest.find('\n');
  const std::string_view id = rest.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
  const std::string user = "fuzz";
  try {
    server::MemoryResponse r;
    switch (data[0] % 9) {
      case 0:
        r = w.api->add(user, rest);
        break;
      case 1:
        r = w.api->list(user, id);
        break;
      case 2:
        r = w.api->wipe(user, id);
        break;
      case 3:
        r = w.api->get(user, id);
        break;
      case 4:
        r = w.api->update(user, id, body);
        break;
      case 5:
        r = w.api->remove(user, id);
        break;
      case 6:
        r = w.api->history(user, id);
        break;
      case 7:
        r = w.api->search(user, rest);
        break;
      case 8:
        r = w.api->end(user, rest);
        break;
    }
    check(r.status == 200, "success is 200");
    const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    check(!j.is_discarded(), "a JSON body");
    check(no_other_user(j, std::to_string(w.other_id)), "another user's memory never shows");
  } catch (const server::ApiError& e) {
    check(e.status() >= 400 && e.status() < 500, "a 4xx status");
    check(e.what()[0] != '\0', "a message");
  }
  const auto other = w.store->get("other", w.other_id);
  check(other && other->summary == "Other user's secret is quokka.", "the other user's memory");
  return 0;
}
